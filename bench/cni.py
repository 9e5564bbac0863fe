"""ADD and DEL latency of podnet-cni + podnet-ipam against the reference ptp + host-local,
both driven by cni-driver (podnet's libcni driver, tests/support/cnidriver) in the same run,
interleaved pod by pod so that machine load falls on both alike. Reports p50/p95 and the ratio podnet / reference.

    python -m bench.cni [--pods 200] [--launcher compiled|python]

By default two runs, both with the compiled front door (what `podnet install-cni` puts on
a node with a C compiler): with the node's warm CNI server (bars: ADD p50 <= 0.7x the
reference, DEL p50 <= 1.0x), and standalone, the front door executing the Python plugin
(bar: ADD p50 <= 3x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import netns
from cni import frontdoor, install
from tests.support.cni_runtime import REFERENCE_PLUGINS as REFERENCE
from tests.support.cni_runtime import driver_path


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def networks(work: str) -> dict[str, dict]:
    ref = {
        "cniVersion": "1.0.0",
        "name": "bench-ref",
        "plugins": [
            {
                "type": "ptp",
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.201.0.0/16"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": f"{work}/host-local",
                },
            }
        ],
    }
    podnet = {
        "cniVersion": "1.0.0",
        "name": "bench-podnet",
        "plugins": [
            {
                "type": "podnet-cni",
                "ipam": {
                    "type": "podnet-ipam",
                    "ranges": [[{"subnet": "10.202.0.0/16"}]],
                    "dataDir": f"{work}/podnet-ipam",
                },
            }
        ],
    }
    return {"reference ptp+host-local": ref, "podnet-cni+podnet-ipam": podnet}


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def inner(args) -> None:
    """Runs inside the node namespace: time cni-driver for each pod and verb."""
    work = args.work
    confs = networks(work)
    files = {}
    for label, conf in confs.items():
        files[label] = os.path.join(work, f"{conf['name']}.conflist")
        with open(files[label], "w") as f:
            json.dump(conf, f)
    env = dict(os.environ, CNI_PATH=f"{work}/bin:{REFERENCE}", CNI_CACHE_DIR=f"{work}/cache")
    times: dict[tuple[str, str], list[float]] = {(label, verb): [] for label in confs for verb in ("add", "del")}
    # CPU time of the call's whole process tree (cni-driver waits for its plugins): on a
    # busy machine wall times mostly measure the wait for a core, CPU time what a call costs.
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in times}

    def run(verb: str, label: str, i: int) -> None:
        pod_netns = f"/var/run/netns/{args.prefix}-{label[:3]}-{i}"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [args.driver, verb, files[label], pod_netns, f"bench-{i}", "eth0"], env=env, capture_output=True
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"{label} {verb} failed: {proc.stderr.decode()}")
        times[(label, verb)].append(elapsed * 1000)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpu[(label, verb)].append(used * 1000)

    for verb in ("add", "del"):
        for i in range(args.pods):
            order = list(confs) if i % 2 == 0 else list(reversed(confs))
            for label in order:
                run(verb, label, i)
    out = {f"{label}|{verb}": v for (label, verb), v in times.items()}
    out.update({f"{label}|{verb}|cpu": v for (label, verb), v in cpu.items()})
    print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--inner", action="store_true")
    parser.add_argument("--work")
    parser.add_argument("--prefix")
    parser.add_argument("--driver")
    parser.add_argument("--server", action="store_true", help="only the run with the warm CNI server")
    parser.add_argument("--standalone", action="store_true", help="only the run without it")
    parser.add_argument("--python", help="interpreter for the plugin launchers (default: this one)")
    parser.add_argument(
        "--launcher",
        choices=("compiled", "python"),
        default="compiled",
        help="the plugin executables: the compiled front door, or the Python launchers",
    )
    parser.add_argument("--all-interpreters", action="store_true", help="server runs on the system python3 too")
    args = parser.parse_args()
    if args.inner:
        inner(args)
        return 0
    runs = []
    if not args.standalone:
        pythons = interpreters(args.python) if args.all_interpreters else [args.python or sys.executable]
        runs += [(True, p) for p in pythons]
    if not args.server:
        runs.append((False, args.python or sys.executable))
    met = [bench_once(args.pods, server, python, args.launcher) for server, python in runs]
    return 0 if all(met) else 1


def interpreters(chosen: str | None) -> list[str]:
    """This interpreter, and the distribution's python3 when it is 3.11+ and another one:
    on a plain Debian node that is what the venv, and so the plugins, run on."""
    if chosen:
        return [chosen]
    out = [sys.executable]
    system = "/usr/bin/python3"
    if os.path.exists(system) and os.path.realpath(system) != os.path.realpath(sys.executable):
        probe = subprocess.run([system, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True)
        if probe.stdout.strip() == b"True":
            out.append(system)
    return out


def install_plugins(bin_dir: str, python: str, launcher: str) -> None:
    if launcher == "python":
        install.write_launchers(bin_dir, python)
        return
    done = frontdoor.install_frontdoor(bin_dir, python)
    if not done.compiled:
        sys.exit(f"bench: the compiled front door was asked for: {done.note}")


def bench_once(pods: int, server_mode: bool, python: str, launcher: str = "compiled") -> bool:
    driver = driver_path()
    prefix = f"pnb-{uuid.uuid4().hex[:6]}"
    node = f"{prefix}-node"
    made = []
    work = tempfile.mkdtemp(prefix="podnet-bench-cni-")
    try:
        install_plugins(os.path.join(work, "bin"), python, launcher)
        sh("ip", "netns", "add", node)
        made.append(node)
        sh("ip", "-n", node, "link", "set", "lo", "up")
        sh("ip", "-n", node, "addr", "add", "192.0.2.1/32", "dev", "lo")
        for label in ("ref", "pod"):
            for i in range(pods):
                name = f"{prefix}-{label}-{i}"
                sh("ip", "netns", "add", name)
                made.append(name)
        server = None
        if server_mode:
            server = netns.popen(node, [sys.executable, "-m", "podnet.cli", "cni-server"], stderr=subprocess.PIPE)
            server.stderr.readline()  # "listening"
        inner_cmd = [sys.executable, "-m", __spec__.name, "--inner", "--pods", str(pods), "--work", work,
                     "--prefix", prefix, "--driver", driver]  # fmt: skip
        try:
            out = netns.run(node, inner_cmd, check=True, capture_output=True, text=True)
        finally:
            if server:
                server.kill()
                server.wait()
        mode = "with podnet cni-server" if server_mode else "standalone"
        return report(json.loads(out.stdout), pods, f"{mode}, {launcher} launcher, plugins on {python}", server_mode)
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(work, ignore_errors=True)


# Issue 16's bars: (verb, largest p50 ratio podnet/reference), with and without the server.
BARS = {True: (("add", 0.7), ("del", 1.0)), False: (("add", 3.0),)}


def report(raw: dict, pods: int, mode: str, server_mode: bool) -> bool:
    rows, cpu = {}, {}
    for key, values in raw.items():
        label, verb, *kind = key.split("|")
        (cpu if kind else rows)[(label, verb)] = (statistics.median(values), percentile(values, 95))
    print(f"CNI ADD/DEL latency through cni-driver (libcni), {pods} pods each, interleaved, ms; podnet {mode}")
    print(f"{'plugin':28} {'ADD p50':>8} {'ADD p95':>8} {'DEL p50':>8} {'DEL p95':>8}")
    for label in ("reference ptp+host-local", "podnet-cni+podnet-ipam"):
        a, d = rows[(label, "add")], rows[(label, "del")]
        print(f"{label:28} {a[0]:8.1f} {a[1]:8.1f} {d[0]:8.1f} {d[1]:8.1f}")
    ref, pn = "reference ptp+host-local", "podnet-cni+podnet-ipam"
    print(
        f"{'ratio podnet/reference':28} {rows[(pn, 'add')][0] / rows[(ref, 'add')][0]:8.2f} "
        f"{rows[(pn, 'add')][1] / rows[(ref, 'add')][1]:8.2f} {rows[(pn, 'del')][0] / rows[(ref, 'del')][0]:8.2f} "
        f"{rows[(pn, 'del')][1] / rows[(ref, 'del')][1]:8.2f}"
    )
    print(
        f"{'CPU ms (user+sys), p50':28} ADD {cpu[(ref, 'add')][0]:.1f} ref / {cpu[(pn, 'add')][0]:.1f} podnet, "
        f"DEL {cpu[(ref, 'del')][0]:.1f} ref / {cpu[(pn, 'del')][0]:.1f} podnet"
    )
    met = True
    for verb, bar in BARS[server_mode]:
        ratio = rows[(pn, verb)][0] / rows[(ref, verb)][0]
        ok = ratio <= bar
        met = met and ok
        print(f"bar: {verb.upper()} p50 at most {bar}x the reference -> {ratio:.2f}x {'MET' if ok else 'NOT MET'}")
    print()
    return met


if __name__ == "__main__":
    sys.exit(main())
