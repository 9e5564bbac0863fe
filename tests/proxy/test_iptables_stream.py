"""A full iptables sync streams: iptables-restore parses the first service ports while the next
are still being rendered. It must stay all or nothing: a line restore refuses in the middle of
the stream, or a renderer that fails half-way, leaves the kernel exactly as it was.

The proxier runs in a child process inside a namespace the test made (the iptables backend
works in the namespace it runs in), once per iptables flavour installed here."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

pytestmark = pytest.mark.integration

FLAVORS = [f for f in ("nft", "legacy") if shutil.which(f"iptables-{f}-restore")]

# Three Services; the one in the middle is spoiled in the second sync, after the first was
# applied. Prints what the kernel held after each step.
CHILD = r"""
import json, subprocess, sys
from proxy.backend import ApplyError
from proxy.iptables import render as R
from proxy.iptables.backend import IptablesBackend
from proxy.model import NodeContext
from proxy.proxier import Proxier
from proxy.trackers import Trackers
from tests.support import synthetic as S

flavor, spoil = sys.argv[1], sys.argv[2]
node = NodeContext(name=S.NODE, node_ips=("192.168.1.1",), cluster_cidrs=("10.128.0.0/9",))
trackers = Trackers(S.NODE)
backend = IptablesBackend(node, flavor=flavor)
px = Proxier(node, backend, trackers, clean_conntrack=False)

def ours():
    out = []
    for table in ("filter", "nat"):
        save = subprocess.run([f"iptables-{flavor}-save", "-t", table], capture_output=True, text=True).stdout
        out += sorted(line for line in save.splitlines() if "PODNET-" in line and not line.startswith("#"))
    return out

S.feed(trackers, *(o for i in range(3) for o in (S.service(i), S.endpoint_slice(i, 3))))
px.sync()
report = {"first": ours()}
S.feed(trackers, *(S.endpoint_slice(i, 4) for i in range(3)))  # every Service changes
px.force_full()
real = R.render_port

def spoiled(p, node):
    pr = real(p, node)
    if p.name.name == "svc-00001":
        if spoil == "line":  # a rule restore refuses: a jump to a chain that does not exist
            pr.text += f"-A {pr.chains[0][1]} -j PODNET-SVC-NOWHERE\n"
        else:  # the renderer fails while restore is already parsing
            raise RuntimeError("renderer failed")
    return pr

R.render_port = spoiled
try:
    px.sync()
    report["error"] = ""
except (ApplyError, RuntimeError) as e:
    report["error"] = type(e).__name__
report["after"] = ours()
R.render_port = real
result = px.sync()  # the next one is full and applies
report["retried"] = result.full
report["final"] = ours()
print(json.dumps(report))
"""


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("spoil", ["line", "render"])
def test_a_streamed_full_sync_is_all_or_nothing(netns, flavor, spoil):
    ns = netns("pnipt")
    out = ns.run(sys.executable, "-c", CHILD, flavor, spoil, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["error"] == ("ApplyError" if spoil == "line" else "RuntimeError")
    first = report["first"]
    assert any("--to-destination" in line for line in first)  # the first sync did apply
    assert report["after"] == first  # nothing of the refused sync: not even the ports before the bad one
    assert report["retried"] and report["final"] != first
    assert sum("-j DNAT" in line for line in report["final"]) == 12  # 3 Services x 4 endpoints
