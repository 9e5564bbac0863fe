"""podnet's CNI plugins: podnet-cni (routed pod networking) and podnet-ipam."""
