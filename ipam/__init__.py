"""podnet IPAM: address ranges, allocators, and the stores that remember who holds what."""
