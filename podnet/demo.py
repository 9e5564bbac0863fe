"""The README's main job until the lab exists: a node and two pods made from namespaces,
attached by podnet-cni through the CNI protocol, pinging each other. Cleans up after itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid

from cni import install


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def main() -> int:
    tag = uuid.uuid4().hex[:6]
    node, pods = f"pn-demo-node-{tag}", [f"pn-demo-pod{i}-{tag}" for i in (1, 2)]
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="podnet-demo-") as work:
        bin_dir = os.path.join(work, "bin")
        install.write_launchers(bin_dir)
        conf = {
            "cniVersion": "1.1.0",
            "name": "demo",
            "type": "podnet-cni",
            "ipam": {
                "type": "podnet-ipam",
                "ranges": [[{"subnet": "10.244.7.0/24"}]],
                "dataDir": os.path.join(work, "ipam"),
            },
        }
        try:
            for name in (node, *pods):
                sh("ip", "netns", "add", name)
                made.append(name)
                sh("ip", "-n", name, "link", "set", "lo", "up")
            sh("ip", "-n", node, "addr", "add", "192.0.2.1/32", "dev", "lo")
            print(f"node {node}: 192.0.2.1")
            ips = []
            for i, pod in enumerate(pods):
                env = {
                    "CNI_COMMAND": "ADD",
                    "CNI_CONTAINERID": f"demo-{i}",
                    "CNI_NETNS": f"/var/run/netns/{pod}",
                    "CNI_IFNAME": "eth0",
                    "CNI_PATH": bin_dir,
                }
                out = sh(
                    "ip", "netns", "exec", node, os.path.join(bin_dir, "podnet-cni"), input=json.dumps(conf), env=env
                )
                result = json.loads(out.stdout)
                ips.append(result["ips"][0]["address"].split("/")[0])
                print(f"pod {pod}: eth0 {ips[-1]} (host side {result['interfaces'][0]['name']})")
            for src, dst in ((pods[0], ips[1]), (pods[1], ips[0])):
                print(f"\n$ ip netns exec {src} ping -c 3 {dst}")
                print(sh("ip", "netns", "exec", src, "ping", "-c", "3", "-i", "0.2", dst).stdout)
            return 0
        except subprocess.CalledProcessError as e:
            print(f"demo failed: {' '.join(e.cmd)}: {e.stderr or e.stdout}", file=sys.stderr)
            return 1
        finally:
            for name in reversed(made):
                subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    sys.exit(main())
