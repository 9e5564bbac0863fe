"""The debug modules' parsers and file formats, and capture on a real node (pods found from
podnet-cni's attachments, in namespaces the test makes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from podnet.debug import bpf, nat, nftrace, pcap, topology
from podnet.debug.topology import TargetError
from tests.support.cni_runtime import Runtime

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


def conflist(tmp_path, subnet: str) -> dict:
    ipam = {"type": "podnet-ipam", "ranges": [[{"subnet": subnet}]], "dataDir": str(tmp_path / "ipam")}
    return {"cniVersion": "1.0.0", "name": "podnet-test", "plugins": [{"type": "podnet-cni", "ipam": ipam}]}


XT = """PACKET: 2 1eba21c8 IN=pn1 SRC=10.1.0.2 DST=10.96.0.5 LEN=60 TOS=0x0 TTL=64 ID=1 DF SPORT=61000 DPORT=80 SYN
 TRACE: 2 1eba21c8 podnet-trace-1-ab:prerouting:rule:0x3:CONTINUE  -4 -t podnet-trace-1-ab -A prerouting -j TRACE
 TRACE: 2 1eba21c8 nat:PODNET-SEP-X:rule:0x9:ACCEPT  -4 -t nat -A PODNET-SEP-X -j DNAT --to-destination 10.1.1.2:8080
 TRACE: 2 1eba21c8 nat:PODNET-POSTROUTING:rule:0x5:0xfffffffb  -4 -t nat -A PODNET-POSTROUTING -j RETURN
 TRACE: 2 1eba21c8 filter:FORWARD:policy:ACCEPT
"""

NFT = """trace id c0446ea9 ip nat OUTPUT packet: oif "lo" ip saddr 127.0.0.1 tcp sport 47902 tcp dport 81
trace id c0446ea9 ip nat OUTPUT rule tcp dport 81 counter packets 0 bytes 0 dnat to 127.0.0.1:80 (verdict accept)
trace id f097a2b7 ip filter OUTPUT rule tcp dport 82 counter packets 0 bytes 0 reject (verdict drop)
trace id f097a2b7 ip filter INPUT policy accept
"""


def test_xtables_monitor_lines_become_rule_hits_without_our_own_table():
    hits = nftrace.parse_xtables(XT, "node/a")
    own = [h for h in hits if h.table.startswith(nftrace.TABLE_PREFIX)]
    assert len(own) == 1  # parsed; TraceSession.hits() leaves it out
    dnat = hits[1]
    assert (dnat.table, dnat.chain, dnat.kind, dnat.verdict) == ("nat", "PODNET-SEP-X", "rule", "ACCEPT")
    assert dnat.rule.startswith("-A PODNET-SEP-X") and "--to-destination 10.1.1.2:8080" in dnat.rule
    assert "SRC=10.1.0.2" in dnat.packet
    assert hits[2].verdict == "RETURN"
    assert (hits[3].kind, hits[3].verdict, hits[3].rule) == ("policy", "ACCEPT", "")


def test_nft_monitor_lines_become_rule_hits():
    hits = nftrace.parse_nft(NFT, "node/b")
    assert [(h.table, h.chain, h.verdict) for h in hits] == [
        ("nat", "OUTPUT", "ACCEPT"),
        ("filter", "OUTPUT", "DROP"),
        ("filter", "INPUT", "ACCEPT"),
    ]
    assert hits[1].rule.endswith("reject") and "tcp sport 47902" in hits[0].packet


def test_trace_table_flags_both_directions_of_the_flow():
    text = nftrace.table_text("podnet-trace-1-ab", nftrace.Flow("tcp", 61000))
    assert "tcp sport 61000 meta nftrace set 1" in text and "tcp dport 61000 meta nftrace set 1" in text
    assert "hook prerouting priority -350" in text and "hook output priority -350" in text
    assert "icmp id 7 meta nftrace set 1" in nftrace.table_text("t", nftrace.Flow("icmp", 7))


def test_conntrack_lines_show_dnat_and_snat():
    dnat = nat.parse(
        "tcp      6 117 SYN_SENT src=10.1.0.2 dst=10.96.0.5 sport=61000 dport=80 [UNREPLIED] "
        "src=10.1.1.2 dst=10.1.0.2 sport=8080 dport=61000 mark=0 use=1",
        "node/a",
    )
    assert (dnat.state, dnat.dnat, dnat.snat) == ("SYN_SENT", "10.1.1.2:8080", None)
    masq = nat.parse(
        "tcp      6 86399 ESTABLISHED src=192.168.1.1 dst=10.96.0.5 sport=61000 dport=80 "
        "src=10.1.1.2 dst=10.1.0.1 sport=8080 dport=61000 [ASSURED] mark=0 use=1",
        "node/a",
    )
    assert (masq.dnat, masq.snat) == ("10.1.1.2:8080", "10.1.0.1")
    plain = nat.parse(
        "tcp 6 10 CLOSE src=10.1.0.2 dst=10.1.1.2 sport=61000 dport=8080 src=10.1.1.2 dst=10.1.0.2 "
        "sport=8080 dport=61000 mark=0 use=1",
        "node/b",
    )
    assert (plain.dnat, plain.snat) == (None, None)
    assert nat.parse("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.", "x") is None


def test_a_bad_filter_is_named_and_a_good_one_compiles():
    with pytest.raises(bpf.FilterError, match="--filter"):
        bpf.compile_filter("tcp port")
    program = bpf.compile_filter("tcp port 80")
    assert program and all(len(insn) == 4 for insn in program)


def test_references_name_the_field():
    with pytest.raises(TargetError, match="--to"):
        topology.split_ref("deploy/x", ("pod", "svc"), "--to")
    assert topology.split_ref("po/x", ("pod",), "--from") == ("pod", "x")
    assert topology.split_ref("service/db", ("svc",), "--to") == ("svc", "db")


def test_pcap_written_here_is_read_by_tcpdump(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    path = str(tmp_path / "x.pcap")
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=5678) / b"hi")
    with pcap.PcapWriter(path) as w:
        w.write(1_700_000_000_123_456_789, frame)
    out = subprocess.run(["tcpdump", "-nr", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 2" in out.stdout


@pytest.mark.integration
def test_capture_on_a_real_node_finds_the_pod_from_its_cni_attachment(netns, cni_path, cni_driver, tmp_path):
    node = netns("pnt-node")
    node.ip("addr", "add", "192.0.2.10/32", "dev", "lo")
    runtime = Runtime(node, cni_path, cni_driver, str(tmp_path))
    conf = conflist(tmp_path, "10.89.0.0/24")
    pod = netns("pnt-pod")
    runtime.add(conf, pod, "ctr-capture-0123456789")
    try:
        atts = topology.attachments(node.name)
        assert [a.container_id for a in atts] == ["ctr-capture-0123456789"]
        out = str(tmp_path / "pod.pcap")
        cap = subprocess.Popen(
            [PODNET, "capture", "--netns", node.name, "pod/ctr-capture", "--filter", "icmp", "--count", "2"]
            + ["-w", out, "--duration", "15"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "capturing on pod/ctr-capture" in cap.stderr.readline()
        time.sleep(0.1)
        assert pod.run("ping", "-c1", "-W2", "192.0.2.10").returncode == 0
        stdout, stderr = cap.communicate(timeout=20)
        assert cap.returncode == 0, stderr
        assert "ICMP echo-request" in stdout and "ICMP echo-reply" in stdout
        read = subprocess.run(["tcpdump", "-nr", out], capture_output=True, text=True).stdout
        assert "ICMP echo request" in read and "ICMP echo reply" in read
        bad = subprocess.run([PODNET, "capture", "--netns", node.name, "pod/nothing"], capture_output=True, text=True)
        assert bad.returncode != 0 and "pod/nothing" in bad.stderr
    finally:
        runtime.delete(conf, pod, "ctr-capture-0123456789")
