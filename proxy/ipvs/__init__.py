"""The IPVS mode of the service proxy."""
