"""podnet with the reference plugins: portmap after podnet-cni, bridge over podnet-ipam."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cni.conftest import NODE_IP, allocations, as_list, podnet_conf

pytestmark = pytest.mark.integration

HTTP_ONCE = (
    "import http.server as h; s=h.HTTPServer(('0.0.0.0', {port}), h.SimpleHTTPRequestHandler); s.serve_forever()"
)


def serve_http(pod, port: int) -> subprocess.Popen:
    proc = pod.popen(
        sys.executable, "-c", HTTP_ONCE.format(port=port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/"
    )
    for _ in range(100):
        if f":{port} " in pod.run("ss", "-Hltn").stdout:
            return proc
        subprocess.run(["sleep", "0.05"])
    raise AssertionError("HTTP server did not start")


def test_portmap_after_podnet_cni_maps_a_host_port_to_the_pod(netns, node, runtime, tmp_path):
    conf = as_list(podnet_conf(tmp_path), {"type": "portmap", "capabilities": {"portMappings": True}})
    server_pod, client_pod = netns("pnt-pod"), netns("pnt-pod")
    runtime.caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    server = runtime.add(conf, server_pod, "web")
    runtime.caps = {}
    runtime.add(conf, client_pod, "client")
    serve_http(server_pod, 80)
    out = client_pod.run(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", f"http://{NODE_IP}:8080/", check=False
    )
    assert out.stdout == "200", out.stderr
    runtime.caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    runtime.delete(conf, server_pod, "web")
    assert server["ips"][0]["address"].split("/")[0] not in node.run("iptables-save", "-t", "nat").stdout


def test_reference_bridge_plugin_with_podnet_ipam(plugin_mode, netns, node, runtime, tmp_path):
    conf = {
        "cniVersion": "1.0.0",
        "name": "podnet-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "pnbr0",
                "isGateway": True,
                "ipam": {
                    "type": "podnet-ipam",
                    "ranges": [[{"subnet": "10.89.0.0/24"}]],
                    "dataDir": str(tmp_path / "ipam"),
                },
            }
        ],
    }
    pods = [netns("pnt-pod") for _ in range(2)]
    results = [runtime.add(conf, pod, f"br-{i}") for i, pod in enumerate(pods)]
    ips = [r["ips"][0]["address"] for r in results]
    assert [ip.split("/")[1] for ip in ips] == ["24", "24"]
    assert results[0]["ips"][0]["gateway"] == "10.89.0.1"
    assert "10.89.0.1/24" in node.ip("-o", "addr", "show", "pnbr0")
    assert pods[0].run("ping", "-c1", "-W2", ips[1].split("/")[0]).returncode == 0
    assert runtime.check(conf, pods[0], "br-0").returncode == 0
    for i, pod in enumerate(pods):
        runtime.delete(conf, pod, f"br-{i}")
    assert allocations(tmp_path) == []


def test_reference_ptp_plugin_with_podnet_ipam(netns, node, runtime, tmp_path):
    conf = {
        "cniVersion": "1.0.0",
        "name": "podnet-test",
        "plugins": [
            {
                "type": "ptp",
                "ipam": {
                    "type": "podnet-ipam",
                    "ranges": [[{"subnet": "10.90.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(tmp_path / "ipam"),
                },
            }
        ],
    }
    pod = netns("pnt-pod")
    result = runtime.add(conf, pod, "ptp-0")
    assert pod.run("ping", "-c1", "-W2", NODE_IP).returncode == 0
    assert result["ips"][0]["address"].startswith("10.90.0.")
    runtime.delete(conf, pod, "ptp-0")
    assert allocations(tmp_path) == []
