"""The nftables mode of the service proxy."""
