"""The README's main job: the tutorial cluster on this machine.

Brings up the default lab (3 nodes, a frontend Deployment behind a NodePort Service, a
backend counter), shows requests answered through the Service from a pod and through a
NodePort from outside the nodes, and tears everything down, also on Ctrl-C or failure.
`make demo KEEP=1` (or PODNET_DEMO_KEEP=1) leaves the lab up to play with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


def step(lab: str, *args: str, capture: bool = False) -> str:
    print(f"\n$ podnet lab {' '.join(args)}", flush=True)
    p = subprocess.run([PODNET, "lab", "--lab", lab, *args], capture_output=capture, text=True, timeout=180)
    if capture:
        print(p.stdout, end="", flush=True)
    if p.returncode != 0:
        raise RuntimeError(f"podnet lab {' '.join(args)} failed: {p.stderr.strip() if capture else p.returncode}")
    return p.stdout or ""


def main() -> int:
    if os.geteuid() != 0:
        print("make demo builds network namespaces: run it as root", file=sys.stderr)
        return 2
    lab = f"demo-{uuid.uuid4().hex[:4]}"
    keep = bool(os.environ.get("PODNET_DEMO_KEEP") or os.environ.get("KEEP"))
    try:
        print(f"$ podnet lab up --name {lab}      # netns-labs/tutorial.yaml", flush=True)
        subprocess.run([PODNET, "lab", "up", "--name", lab], check=True, timeout=180)
        step(lab, "get", "pods", "-o", "wide")
        step(lab, "get", "endpoints")
        backend = json.loads(
            subprocess.run(
                [PODNET, "lab", "--lab", lab, "get", "pods", "-l", "app=backend", "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["items"][0]["name"]
        step(lab, "curl", "svc/frontend", "--from", f"pod/{backend}", "-n", "6")
        step(lab, "curl", "node2:30080", "-n", "6")
        print("\nEvery answer names the frontend pod that served it; 'visits' is the backend's shared counter,")
        print("reached by each frontend through the backend Service (pod -> Service -> pod).")
        return 0
    except (RuntimeError, subprocess.SubprocessError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(
                f"\nthe lab is still up; try `podnet lab --lab {lab} get pods`; remove it with: podnet lab down {lab}"
            )
        else:
            print(f"\n$ podnet lab down {lab}", flush=True)
            subprocess.run([PODNET, "lab", "down", lab], timeout=120)


if __name__ == "__main__":
    sys.exit(main())
