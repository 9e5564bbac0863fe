"""IPAM's etcd client: the neutral one (cluster/etcd.py), failing with IPAM's own errors so
the allocators and the CNI plugins map them to "try again" and "invalid" as before."""

from __future__ import annotations

from cluster.etcd import EtcdClient, KeyValue, b64, prefix_end, unb64
from ipam.errors import IPAMError, StoreUnavailable

__all__ = ["EtcdGateway", "KeyValue", "b64", "prefix_end", "unb64"]


class EtcdGateway(EtcdClient):
    unavailable_error = StoreUnavailable
    refused_error = IPAMError
