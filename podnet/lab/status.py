"""The status writer: what the controller observes, in status.json, for `podnet lab get`,
the debug commands and the tests. It is a view for readers; the controller never reads it
back (a controller taking over reads its checkpoint)."""

from __future__ import annotations

import os
import time
from typing import Any

from podnet.lab import names
from podnet.lab.agents import NodeAgents
from podnet.lab.endpointslices import endpoints
from podnet.lab.kubelet import Kubelet
from podnet.lab.pod import LIVE, RUNNING
from podnet.lab.service_addresses import ServiceAddresses
from podnet.lab.spec import LabSpec
from podnet.lab.state import write_json


class StatusWriter:
    def __init__(
        self, path: str, lab: str, nodes: dict[str, dict], kubelet: Kubelet, addresses: ServiceAddresses,
        agents: NodeAgents,
    ):  # fmt: skip
        self.path = path
        self.lab = lab
        self.nodes = nodes
        self.kubelet = kubelet
        self.addresses = addresses
        self.agents = agents
        self.last_write = 0.0
        self.cost = 0.0  # how long the last write took

    def publish(self, now: float, spec: LabSpec | None, generation: int, changed: bool, busy: bool = False) -> bool:
        """Write status.json when it is due; True when written. `busy`: pods are on their way up."""
        since = now - self.last_write
        # a status of many pods costs a moment to write: while pods start, write it less often,
        # so that writing it takes at most a tenth of the controller's time; once none is
        # starting, the change a reader waits for (the last pods available) goes out soon
        if since < max(0.1, (10 if busy else 2) * self.cost) or (not changed and since < 1.0):
            return False  # unchanged: once a second (the agents' revisions come as `changed`)
        self.last_write = now
        t0 = time.monotonic()
        write_json(self.path, self.status(now, spec, generation), compact=True)
        self.cost = time.monotonic() - t0
        return True

    def status(self, now: float, spec: LabSpec | None, generation: int) -> dict[str, Any]:
        pods = self.kubelet.pods
        synced = self.agents.synced_revision()
        deps = []
        converged = spec is not None
        for dep in spec.deployments if spec else ():
            template = dep.template_hash()
            mine = [p for p in pods.values() if p.deployment_key == dep.key]
            updated = [p for p in mine if p.template == template and p.phase in LIVE and not p.doomed]
            ready = [p for p in updated if p.ready]
            others = [p for p in mine if p.template != template and p.phase in LIVE]
            done = len(ready) == dep.replicas and len(updated) == dep.replicas and not others
            converged = converged and done
            if dep.bare:  # a bare Pod: only its pod is shown; `run` waits until every node knows it
                converged = converged and all(p.available(synced) for p in ready)
                continue
            deps.append(
                {
                    "name": dep.name,
                    "namespace": dep.namespace,
                    "template": template,
                    "replicaSets": {
                        t: {
                            "pods": sum(1 for p in mine if p.template == t and p.phase in LIVE),
                            "ready": sum(1 for p in mine if p.template == t and p.ready),
                            "version": next(p.version for p in mine if p.template == t),
                        }
                        for t in dict.fromkeys(p.template for p in mine)
                    },  # fmt: skip
                    "total": sum(1 for p in mine if p.phase in LIVE),
                    "replicas": dep.replicas,
                    "updated": len(updated),
                    "ready": len(ready),
                    "available": sum(1 for p in ready if p.available(synced)),
                    "version": dep.version,
                    "restarts": self.kubelet.restarts.get(dep.key, 0),
                    "done": done,
                }
            )
        services = []
        for svc in spec.services if spec else ():
            node_ports = self.addresses.node_ports_of(svc)
            eps = []
            for e in endpoints(svc, pods.values()):
                # whether every node's proxy has programmed it: a probe that fails against an
                # endpoint that is not yet available is seeing a transient
                eps.append({**vars(e), "available": e.ready and pods[e.pod].available(synced)})
            services.append(
                {
                    "name": svc.name,
                    "namespace": svc.namespace,
                    "type": svc.type,
                    "clusterIP": "None" if svc.headless else self.addresses.cluster_ip(svc.key),
                    "externalIP": self.addresses.lb_ip(svc.key),
                    "selector": svc.selector,
                    "ports": [
                        {
                            "port": p.port,
                            "targetPort": p.target_port,
                            "nodePort": node_ports[p.port],
                            "protocol": p.protocol,
                            "name": p.name,
                        }
                        for p in svc.ports
                    ],  # fmt: skip
                    "endpoints": eps,
                }
            )
        nodes = [
            {**{k: node[k] for k in ("name", "ip", "subnet", "netns")}, "agent": self.agents.state(name)}
            for name, node in self.nodes.items()
        ]
        pod_list = [
            {
                "name": p.name,
                "namespace": p.namespace,
                "restarts": p.restarts,
                "template": p.template,
                "deployment": p.deployment,
                "node": p.node,
                "ip": p.ip,
                "phase": p.phase,
                "ready": p.ready,
                "available": p.available(synced),
                "version": p.version,
                "labels": p.labels,
                "pid": p.pid,
                "created": p.created,
                "netns": names.pod_netns(self.lab, p.name),
            }
            for p in sorted(pods.values(), key=lambda p: p.name)
        ]
        settled = converged and all(p.phase == RUNNING for p in pods.values())
        return {
            "lab": self.lab,
            "observedGeneration": generation,
            "converged": converged,
            "settled": settled,
            "controllerPid": os.getpid(),
            "etcd": "running" if self.agents.etcd.running() else "down",
            "nodes": nodes,
            "namespaces": list(spec.namespaces) if spec else [],
            "deployments": deps,
            "services": services,
            "pods": pod_list,
            "time": time.time(),
        }
