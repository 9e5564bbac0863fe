"""podnet's service proxy: objects -> change trackers -> one model -> a renderer per mode ->
one atomic apply -> conntrack clean-up (see DESIGN.md)."""
