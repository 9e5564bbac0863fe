"""Kubernetes NetworkPolicy (networking.k8s.io/v1) for podnet: the API objects parsed and
validated (spec.py), label selectors (selectors.py), the cluster's pods and namespaces as
policy sees them (cluster.py), what applies to each pod (model.py), and its nftables form
(nft.py)."""
