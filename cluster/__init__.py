"""The cluster's state: the neutral etcd client and the sources of cluster objects."""
