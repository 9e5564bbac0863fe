"""Cluster DNS: what CoreDNS's kubernetes plugin answers, on dnslib (PyPI), in a lab pod.

Each lab runs it as the Deployment `coredns` in `kube-system`, behind the Service `kube-dns`
at the 10th address of the service CIDR (kube's convention), and every pod's resolv.conf
names it with the search path `NS.svc.cluster.local svc.cluster.local cluster.local`:

  NAME.NS.svc.cluster.local                 A: the ClusterIP; headless: every ready pod's IP
  _PORT._PROTO.NAME.NS.svc.cluster.local    SRV: each named port, target the Service's name
  anything else in cluster.local            NXDOMAIN

Records come from a file the lab controller writes (`records.json` in the lab's state
directory) whenever Services or endpoints change; the server reads it again when it changed,
as CoreDNS follows the API server's watch. Names outside cluster.local get REFUSED: a lab has
no upstream resolver.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import signal
import threading
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, SRV, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from podnet.lab import names
from podnet.lab.spec import Deployment, LabSpec, Service, ServicePort, Workload

DOMAIN = "cluster.local"
TTL = 5  # CoreDNS's default for Services
DNS_SERVICE, DNS_NAMESPACE, DNS_DEPLOYMENT = "kube-dns", "kube-system", "coredns"
DNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.1"
DNS_LABELS = {"k8s-app": "kube-dns"}


def records_path(lab: str) -> str:
    return os.path.join(names.state_dir(lab), "records.json")


@functools.lru_cache(maxsize=8)  # asked for every pod the kubelet starts
def dns_ip(service_cidr: str) -> str:
    """The 10th address of the service CIDR (10.96.0.10 for 10.96.0.0/16), as kubeadm picks it."""
    return str(ipaddress.ip_network(service_cidr)[10])


def resolv_conf(namespace: str, server: str) -> str:
    """A pod's /etc/resolv.conf, as kubelet writes it for dnsPolicy ClusterFirst."""
    search = f"{namespace}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}"
    return f"search {search}\nnameserver {server}\noptions ndots:5\n"


def with_cluster_dns(spec: LabSpec) -> LabSpec:
    """The lab's desired state with its DNS Deployment and the kube-dns Service (listed last;
    it asks for its address, so it gets it before any Service that does not)."""
    from dataclasses import replace

    if spec.service(DNS_SERVICE, DNS_NAMESPACE) is not None:
        return spec
    svc = Service(
        name=DNS_SERVICE,
        selector=dict(DNS_LABELS),
        ports=(
            ServicePort(port=53, target_port=53, name="dns", protocol="UDP"),
            ServicePort(port=53, target_port=53, name="dns-tcp", protocol="TCP"),
        ),
        cluster_ip=dns_ip(spec.network.service_cidr),
        namespace=DNS_NAMESPACE,
    )
    dep = Deployment(
        name=DNS_DEPLOYMENT,
        replicas=1,
        labels=dict(DNS_LABELS),
        version="v1.11.1",
        workload=Workload(kind="dns", port=53),
        namespace=DNS_NAMESPACE,
        image=DNS_IMAGE,
        container="coredns",
    )
    namespaces = tuple(dict.fromkeys((*spec.namespaces, DNS_NAMESPACE)))
    return replace(spec, services=(*spec.services, svc), deployments=(*spec.deployments, dep), namespaces=namespaces)


# -- the answers (pure) ------------------------------------------------------------------------
def records(services: list[dict[str, Any]]) -> dict[str, Any]:
    """services: [{name, namespace, clusterIP (or None: headless), ports: [{name, protocol, port}],
    pods: [ready pod IPs]}] -> the table the server answers from."""
    names_: dict[str, dict] = {}
    for s in services:
        fqdn = f"{s['name']}.{s['namespace']}.svc.{DOMAIN}"
        ips = [s["clusterIP"]] if s.get("clusterIP") else list(s.get("pods", []))
        names_[fqdn] = {"ips": ips, "ports": [p for p in s.get("ports", []) if p.get("name")]}
    return {"names": names_}


def answer(request: DNSRecord, table: dict[str, Any]) -> DNSRecord:
    reply = request.reply()
    q = request.q
    qname = str(q.qname).rstrip(".").lower()
    if not (qname == DOMAIN or qname.endswith("." + DOMAIN)):
        reply.header.rcode = RCODE.REFUSED
        return reply
    entries = table.get("names", {})
    if q.qtype == QTYPE.SRV or qname.startswith("_"):
        parts = qname.split(".", 2)
        if len(parts) == 3 and parts[0].startswith("_") and parts[1].startswith("_") and parts[2] in entries:
            port_name, proto, service = parts[0][1:], parts[1][1:].upper(), parts[2]
            found = [p for p in entries[service]["ports"] if p["name"] == port_name and p["protocol"] == proto]
            if q.qtype in (QTYPE.SRV, QTYPE.ANY):
                for p in found:
                    srv = SRV(priority=0, weight=100, port=p["port"], target=DNSLabel(service + "."))
                    reply.add_answer(RR(q.qname, QTYPE.SRV, rdata=srv, ttl=TTL))
            if not found:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        reply.header.rcode = RCODE.NXDOMAIN
        return reply
    entry = entries.get(qname)
    if entry is None:
        # a name that is a prefix of known ones (svc.cluster.local, ns.svc.cluster.local) exists
        if not any(n.endswith("." + qname) for n in entries):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply
    for ip in entry["ips"]:
        addr = ipaddress.ip_address(ip)
        if addr.version == 4 and q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        elif addr.version == 6 and q.qtype in (QTYPE.AAAA, QTYPE.ANY):
            reply.add_answer(RR(q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=TTL))
    return reply  # no address of the asked family: NOERROR with no answer, as CoreDNS does


class _Resolver(BaseResolver):
    def __init__(self, path: str):
        self.path = path
        self.mtime = 0
        self.table: dict[str, Any] = {}
        self.lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self.mtime:
                    with open(self.path) as f:
                        self.table = json.load(f)
                    self.mtime = mtime
            except (OSError, ValueError):
                pass  # keep the last good table
            return self.table

    def resolve(self, request, handler):
        return answer(request, self._load())


def serve(pod, ready_fd: int) -> None:
    """The DNS pod's process (forked by the kubelet into the pod): UDP and TCP on port 53."""
    from podnet.lab.workloads import _loopback_up

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _loopback_up()
    resolver = _Resolver(os.environ["PODNET_DNS_RECORDS"])  # set by the kubelet that forked it
    quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    servers = [DNSServer(resolver, address="0.0.0.0", port=pod.port, tcp=tcp, logger=quiet) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    print(f"cluster DNS for {DOMAIN} on port {pod.port}, records from {resolver.path}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for s in servers:
        s.stop()
    os._exit(0)
