"""The agent's pure parts: configuration, lease records, event diffing, deploy files, and the
kubernetes source's handling of the library's own watch events (no API server: none exists here)."""

from __future__ import annotations

import configparser
import json
import os
import shlex

import pytest
import yaml

from cluster.etcd_source import key_for, ref_for_key
from cluster.source import ADDED, DELETED, MODIFIED, Mirror, ObjectRef
from podnet.agent.config import FLAGS, ConfigError, build, read_file
from podnet.agent.routes import vtep_mac
from podnet.agent.subnet import NodeRecord

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ETCD = "etcd://127.0.0.1:2379/podnet"


def flags(**kw):
    return {name: kw.get(name.replace("-", "_")) for name in FLAGS}


def test_config_defaults_and_flags_over_file(tmp_path):
    f = tmp_path / "agent.yaml"
    f.write_text("node-name: from-file\nbackend: host-gw\nstore: " + ETCD + "\nnode-ip: [192.168.1.5]\n")
    cfg = build(flags(node_name="from-flag"), read_file(str(f)))
    assert cfg.node_name == "from-flag" and cfg.backend == "host-gw" and cfg.node_ips == ("192.168.1.5",)
    assert cfg.cluster_cidrs == ("10.244.0.0/16",) and cfg.node_mask_sizes == (24,) and cfg.lease_ttl == 30


def test_config_dual_stack_masks():
    cfg = build(flags(store=ETCD, cluster_cidr=("10.244.0.0/16", "fd00:10::/48"), node_ip=("10.0.0.1", "fd00::1")))
    assert cfg.node_mask_sizes == (24, 64) and cfg.node_ip(6) == "fd00::1"


def test_network_policy_on_by_default_off_by_flag_or_file(tmp_path):
    assert build(flags(store=ETCD)).network_policy is True
    assert build(flags(store=ETCD, network_policy=False)).network_policy is False
    f = tmp_path / "c.yaml"
    f.write_text("network-policy: false\n")
    assert build(flags(store=ETCD), read_file(str(f))).network_policy is False


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"backend": "udp"}, "--backend"),
        ({"node_ip": ("10.0.0.1", "10.0.0.2")}, "--node-ip"),
        ({"node_ip": ("nope",)}, "--node-ip"),
        ({"cluster_cidr": ("10.244.0.0/33",)}, "--cluster-cidr"),
        ({"node_mask_size": (8,)}, "--node-mask-size"),
        ({"objects": "dir:relative"}, "--objects"),
        ({"lease_ttl": 1}, "--lease-ttl"),
        ({"store": "file:/var/lib/x"}, "--objects etcd"),
        ({"cni_bin_dir": "bin"}, "--cni-bin-dir"),
        ({"network_policy": "yes"}, "--network-policy"),
    ],
)
def test_config_errors_name_the_flag(kw, field):
    with pytest.raises(ConfigError, match=field):
        build(flags(**{"store": ETCD, **kw}))


def test_config_file_unknown_key(tmp_path):
    f = tmp_path / "agent.yaml"
    f.write_text("nodename: x\n")
    with pytest.raises(ConfigError, match="unknown key 'nodename'"):
        read_file(str(f))


def test_node_record_round_trip_and_routing_ignores_renewals():
    rec = NodeRecord("n1", ("10.244.3.0/24",), ("192.168.1.5",), "vxlan", vtep_mac("n1"), 30, 7)
    again = NodeRecord.from_json(rec.to_json())
    assert again == rec
    assert json.loads(rec.to_json())["vtepMAC"] == vtep_mac("n1")
    assert again.routing() == NodeRecord(**{**rec.__dict__, "renewed": 8}).routing()
    assert int(vtep_mac("n1").split(":")[0], 16) & 0x03 == 0x02  # locally administered, unicast
    assert vtep_mac("n1") == vtep_mac("n1") != vtep_mac("n2")


def test_mirror_relist_emits_only_what_changed():
    m = Mirror()
    a, b, c = (ObjectRef("Service", "default", n) for n in "abc")
    first = m.replace([(a, {"v": 1}), (b, {"v": 1})])
    assert [e.type for e in first] == [ADDED, ADDED]
    # A replayed watch event changes nothing; a re-list after a compaction gives exactly the difference.
    assert m.put(a, {"v": 1}) is None
    events = m.replace([(a, {"v": 2}), (c, {"v": 1})])
    assert [(e.type, e.ref.name) for e in events] == [(DELETED, "b"), (MODIFIED, "a"), (ADDED, "c")]
    assert m.delete(b) is None
    assert m.replace([(a, {"v": 2})], kinds={"Node"}) == []  # another kind's list leaves Services alone


def test_etcd_layout():
    svc, node = ObjectRef("Service", "ns1", "web"), ObjectRef("Node", "", "n1")
    assert key_for("/podnet", svc) == "/podnet/registry/services/ns1/web"
    assert key_for("/podnet", node) == "/podnet/registry/nodes/n1"
    assert ref_for_key("/podnet", "/podnet/registry/services/ns1/web") == svc
    assert ref_for_key("/podnet", "/podnet/registry/nodes/n1") == node
    assert ref_for_key("/podnet", "/podnet/registry/services/web") is None
    assert ref_for_key("/podnet", "/podnet/node-subnets/@k/10.244.0.0_24") is None


def _agent_flags_in(words: list[str]) -> set[str]:
    return {w.split("=")[0][2:] for w in words if w.startswith("--")}


def test_deploy_files_parse_and_name_only_existing_flags():
    known = set(FLAGS) | {"config"}
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(os.path.join(ROOT, "deploy", "podnet-agent.service"))
    cmd = shlex.split(unit["Service"]["ExecStart"])
    assert cmd[0].endswith("/podnet") and cmd[1] == "agent"
    assert _agent_flags_in(cmd) <= known, _agent_flags_in(cmd) - known
    with open(os.path.join(ROOT, "deploy", "daemonset.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    assert set(docs) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}
    container = docs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["podnet", "agent"]
    assert _agent_flags_in(container["args"]) <= known, _agent_flags_in(container["args"]) - known
    paths = {v["hostPath"]["path"] for v in docs["DaemonSet"]["spec"]["template"]["spec"]["volumes"]}
    assert {"/opt/cni/bin", "/etc/cni/net.d"} <= paths
    from cluster.kube_source import LISTERS, RBAC_VERBS
    from cluster.source import KINDS

    granted = {(g, r): set(rule["verbs"]) for rule in docs["ClusterRole"]["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}  # fmt: skip
    for kind in LISTERS:
        group = KINDS[kind].api_version.rpartition("/")[0]
        assert set(RBAC_VERBS) <= granted.get((group, KINDS[kind].resource), set()), kind


def test_healthz_needs_every_part_and_metrics_carry_agent_and_proxy():
    from podnet.agent.housekeeping import Housekeeping
    from proxy.metrics import Metrics

    parts = {"subnet": True, "routes": True, "proxy": True}
    h = Housekeeping(lambda: dict(parts), lambda: {"podnet_agent_routes": 2}, Metrics().text, lambda: 42)
    code, _, body = h.healthz("/healthz")
    assert code == 200 and json.loads(body)["syncedRevision"] == 42
    parts["routes"] = False
    code, _, body = h.healthz("/healthz")
    assert code == 503 and json.loads(body)["routes"] is False
    text = h.metrics("/metrics")[2]
    assert "podnet_agent_routes 2" in text and "kubeproxy_sync_proxy_rules" in text
