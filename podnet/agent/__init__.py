"""`podnet agent`: the per-node daemon (subnet lease, routes, CNI server, service proxy)."""
