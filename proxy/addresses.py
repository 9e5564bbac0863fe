"""This network namespace's addresses: the default --node-ip (the addresses of the interface that
holds the default route) and the local addresses --nodeport-addresses selects from."""

from __future__ import annotations

import json
import subprocess


def _ip_json(*args: str) -> list:
    r = subprocess.run(["ip", "-j", *args], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        return []
    return json.loads(r.stdout)


def local_addresses(family: int = 4) -> tuple[str, ...]:
    out = []
    for link in _ip_json(f"-{family}", "addr", "show"):
        for a in link.get("addr_info", []):
            if a.get("local"):
                out.append(a["local"])
    return tuple(out)


def default_node_ips(family: int = 4) -> tuple[str, ...]:
    routes = _ip_json(f"-{family}", "route", "show", "default")
    devs = [r["dev"] for r in routes if r.get("dev")]
    if not devs:
        return ()
    out = []
    for link in _ip_json(f"-{family}", "addr", "show", "dev", devs[0]):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global" and a.get("local"):
                out.append(a["local"])
    return tuple(out)
