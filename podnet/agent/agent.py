"""The agent: the parts wired together, started in order, stopped in reverse.

Order matters: the VXLAN device exists before the record that names its MAC is published;
the subnet is leased before the conflist names it; GC runs before the server takes ADDs.
Stopping leaves routes, rules and the lease in place: a restarted agent (or one killed)
finds them, and pods keep talking meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

from cluster.source import ObjectSource
from ipam.store_url import parse_store_url
from podnet.agent import masquerade
from podnet.agent.cni import NodeCNI
from podnet.agent.config import AgentConfig
from podnet.agent.housekeeping import Housekeeping
from podnet.agent.policy import POLICY_KINDS, NetworkPolicies, remove_table
from podnet.agent.routes import Routes
from podnet.agent.services import Services
from podnet.agent.subnet import NodeRecord, RecordWatcher, SubnetLease

log = logging.getLogger("podnet.agent")


def objects_source(cfg: AgentConfig) -> ObjectSource:
    if cfg.objects.startswith("dir:"):
        from cluster.dir_source import DirObjectSource

        return DirObjectSource(cfg.objects[len("dir:") :])
    if cfg.objects == "kubernetes":
        from cluster.kube_source import LISTERS, KubernetesObjectSource, load_api_client

        # without policy, no Pods are listed (and watched: a big cluster's busiest kind)
        kinds = tuple(k for k in LISTERS if cfg.network_policy or k not in POLICY_KINDS)
        return KubernetesObjectSource(load_api_client(cfg.kubeconfig), kinds)
    from cluster.etcd import EtcdClient
    from cluster.etcd_source import EtcdObjectSource

    url = parse_store_url(cfg.store)
    return EtcdObjectSource(EtcdClient(url.host, url.port), url.prefix)


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.url = parse_store_url(cfg.store)
        self.store = self.url.open()
        self.routes = Routes(cfg.node_name, cfg.backend, cfg.node_ips)
        self.lease = SubnetLease(self.url, self.store, list(cfg.cluster_cidrs), list(cfg.node_mask_sizes),
                                 cfg.node_name, cfg.lease_ttl, self._record)  # fmt: skip
        self.watcher = RecordWatcher(self.lease.records, self._records_changed)
        source = objects_source(cfg)
        self.policies: NetworkPolicies | None = None
        if cfg.network_policy:  # one watch feeds both the proxy and the policy engine
            from cluster.fanout import SharedSource

            self.policies = NetworkPolicies(cfg.node_name)
            source = SharedSource(source, self.policies)
        self.services = Services(cfg.proxy_mode, cfg.node_name, cfg.node_ips, cfg.cluster_cidrs,
                                 cfg.service_cidrs, source, cfg.min_sync_period)  # fmt: skip
        self.cni: NodeCNI | None = None
        self.house = Housekeeping(self.checks, self.gauges, self.services.metrics.text, self.synced_revision)
        self.stop_event = threading.Event()
        self._records_seen = 0
        self._records_synced = -1

    def _record(self, subnets: list[str]) -> NodeRecord:
        return NodeRecord(self.cfg.node_name, tuple(subnets), self.cfg.node_ips, self.cfg.backend, self.routes.mac)

    def _records_changed(self, records: dict[str, NodeRecord]) -> None:
        self._records_seen += 1
        seen = self._records_seen
        self.routes.sync(records)
        if self.routes.in_sync:
            self._records_synced = seen

    def checks(self) -> dict[str, bool]:
        return {
            "subnet": self.lease.healthy(),
            "routes": self.routes.in_sync and self._records_synced == self._records_seen,
            "proxy": self.services.in_sync(),
            "policy": self.policies is None or self.policies.in_sync(),
        }

    def synced_revision(self) -> int:
        """The store revision every change up to which this node has programmed: its Service
        rules and, with network policy, its policy table (the lower of the two)."""
        proxy = self.services.synced_revision()
        return proxy if self.policies is None else min(proxy, self.policies.synced_revision)

    def gauges(self) -> dict[str, float]:
        return {
            "podnet_agent_subnet_renewals": self.lease.renewals,
            "podnet_agent_subnet_renewal_failures": self.lease.failures,
            "podnet_agent_routes": len(self.routes.ours()),
            "podnet_agent_route_sync_failures": self.routes.failures,
            "podnet_agent_nodes": len(self.watcher.current),
            "podnet_agent_node_record_relists": self.watcher.relists,
            "podnet_agent_object_changes": self.services.events,
            "podnet_agent_policy_isolated_pods": self.policies.isolated_pods if self.policies else 0,
            "podnet_agent_policy_sync_failures": self.policies.failures if self.policies else 0,
        }

    def start(self) -> None:
        cfg = self.cfg
        t0 = time.monotonic()
        self.routes.prepare([])  # the VTEP (and its MAC) before the record that names it
        subnets = self.lease.acquire()
        self.routes.prepare(subnets)
        log.info("node %s: subnets %s (%s)", cfg.node_name, ", ".join(subnets), cfg.backend)
        self.lease.start()
        self.watcher.start()
        # before the conflist: no pod attaches before its egress is masqueraded
        masquerade.ensure(subnets, list(cfg.cluster_cidrs))
        self.cni = NodeCNI(cfg.cni_bin_dir, cfg.cni_conf_dir, cfg.cni_data_dir, subnets, self.routes.mtu,
                           cfg.cluster_cidrs)  # fmt: skip
        log.info("wrote %s", self.cni.install())
        alive = self.cni.gc()
        log.info("CNI GC: %d attachments alive, the rest released", alive)
        self.cni.serve()
        if self.policies is not None:
            self.policies.start()
        else:
            remove_table()
        self.services.start()
        self.house.serve(cfg.healthz_bind_address, cfg.metrics_bind_address)
        log.info("agent ready in %.2fs", time.monotonic() - t0)

    def run(self) -> None:
        self.start()
        try:
            self.stop_event.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        self.house.close()
        self.services.stop()
        if self.policies is not None:
            self.policies.stop()
        if self.cni is not None:
            self.cni.close()
        self.watcher.stop()
        self.lease.stop()
        self.routes.close()
