"""`podnet lab ...`: bring a cluster up on this machine and do the everyday cluster moves,
in the habits of kubectl."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
import time
from typing import Any, NoReturn

import click
import yaml

import netns
from podnet import progress
from podnet.lab import busybox, names, selectors, spec
from podnet.lab.complete import node_ports, refs
from podnet.lab.net import Lab, LabError, ensure_root, start_controller, teardown
from podnet.lab.node import Namespace
from podnet.lab.state import LabFiles, LabNotFound

TIMEOUT = 180.0


def fail(msg: str) -> NoReturn:
    raise click.ClickException(msg)


def pick_lab(name: str | None) -> LabFiles:
    if name:
        return LabFiles(name)
    present = [lab for lab in names.labs_present() if LabFiles(lab).exists()]
    if not present:
        fail("no lab is up (start one with `podnet lab up`)")
    if len(present) > 1:
        fail(f"several labs are up ({', '.join(present)}): choose one with --lab")
    return LabFiles(present[0])


def split_ref(ref: str, kinds: dict[str, str]) -> tuple[str, str]:
    kind, sep, name = ref.partition("/")
    if not sep or kind not in kinds or not name:
        fail(f"{ref!r}: expected {' or '.join(sorted(set(kinds.values())))}/NAME")
    return kinds[kind], name


POD = {"pod": "pod", "pods": "pod", "po": "pod"}
DEPLOY = {"deploy": "deployment", "deployment": "deployment", "deployments": "deployment"}
SVC = {"svc": "service", "service": "service", "services": "service"}
NODE = {"node": "node", "nodes": "node", "no": "node"}


@click.group("lab")
@click.option("--lab", "lab_name", envvar="PODNET_LAB", help="Which lab (default: the one that is up).")
@click.pass_context
def lab(ctx, lab_name) -> None:
    """Whole clusters on one machine, made of network namespaces."""
    ctx.obj = lab_name


def files_of(ctx) -> LabFiles:
    files = pick_lab(ctx.obj)
    if not files.exists():
        fail(f"lab {files.lab!r} is not up")
    with files.locked():
        if files.controller_pid() is None:
            pid = start_controller(files.lab)
            click.echo(f"lab {files.lab}: its controller was not running; started it again (pid {pid})", err=True)
    return files


def wait_converged(files: LabFiles, generation: int, what: str, deployments: tuple[str, ...] = ()) -> dict:
    """Wait until the controller has carried out `generation`; for the Deployments a command
    changed (NAMESPACE/NAME), until each of their pods is also available (an endpoint in every
    node's rules), so whatever the person does next meets the new pods, not a transient."""

    def mine(st: dict) -> list[dict]:
        return [d for d in st.get("deployments", []) if f"{d.get('namespace', 'default')}/{d['name']}" in deployments]

    def done(st: dict) -> bool:
        if st.get("observedGeneration", 0) < generation or not st.get("converged"):
            return False
        return all(d["available"] == d["replicas"] for d in mine(st))

    def measure(st: dict) -> tuple[int, int, str] | None:
        if st.get("observedGeneration", 0) < generation or not deployments:
            return None  # the controller has not seen the change yet: old numbers would mislead
        deps = mine(st)  # only what this command changed, not every Deployment of the lab
        ready, updated = sum(d["ready"] for d in deps), sum(d["updated"] for d in deps)
        return sum(d["available"] for d in deps), sum(d["replicas"] for d in deps), f"{ready} ready, {updated} updated"

    meter = progress.meter(f"{what}: pods available")
    try:
        return files.wait(done, TIMEOUT, measure, meter)
    except (TimeoutError, RuntimeError) as e:
        fail(str(e))
    finally:
        meter.close()


# -- lifecycle --------------------------------------------------------------------------
@lab.command("up")
@click.argument("topology", required=False, type=click.Path(dir_okay=False))
@click.option("--name", help="Name the lab (default: the topology's name).")
@click.option("--wait", "wait_s", default=TIMEOUT, show_default=True, help="Seconds to wait for every pod to be ready.")
def up(topology, name, wait_s) -> None:
    """Build a lab from TOPOLOGY.yaml (default: the tutorial cluster)."""
    ensure_root()
    try:
        s = spec.load(topology) if topology else spec.default()
        if name:
            s = spec.check(dataclasses.replace(s, name=spec.check_name(name, "--name")))
    except spec.SpecError as e:
        fail(str(e))
    start = time.monotonic()
    try:
        built = Lab(s, keep=True, progress=lambda m: click.echo(m, err=True), meter=progress.meter("pods ready"))
        status = built.up(wait=wait_s)
    except (LabError, TimeoutError, RuntimeError, OSError) as e:
        fail(f"lab up failed (nothing left behind): {e}")
    click.echo(f"lab {s.name} is up in {time.monotonic() - start:.1f}s\n")
    print_table(service_rows(status, wide=False))
    np = [(sv["name"], p["nodePort"]) for sv in status["services"] for p in sv["ports"] if p.get("nodePort")]
    if np:
        n = status["nodes"][0]["name"]
        click.echo(f"\ntry: podnet lab curl {n}:{np[0][1]}    (the {np[0][0]} Service through a NodePort)")
    click.echo(f"when done: podnet lab down {s.name}")


@lab.command("down")
@click.argument("name", required=False)
@click.option("--all", "all_labs", is_flag=True, help="Remove every lab on this machine.")
@click.pass_context
def down(ctx, name, all_labs) -> None:
    """Remove everything a lab made (safe to run twice, and after a crash)."""
    ensure_root()
    labs = [name or ctx.obj] if (name or ctx.obj) else names.labs_present()
    if not labs:
        click.echo("no lab to remove")
        return
    if len(labs) > 1 and not all_labs:
        fail(f"several labs are up ({', '.join(labs)}): name one, or pass --all")
    for lab_name in labs:
        try:
            removed = teardown(lab_name)
        except LabError as e:
            fail(str(e))
        click.echo(f"lab {lab_name}: removed {len(removed)} namespaces")


def output_option(*choices: str):
    """-o, in kubectl's words where they fit: text (the table), wide, json, yaml, name."""
    return click.option(
        "-o", "--output", type=click.Choice(choices), default="text", show_default=True, help="Output format."
    )


def dump(data: object, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@lab.command("status")
@output_option("text", "json", "yaml")
@click.pass_context
def status_cmd(ctx, output) -> None:
    """The lab at a glance: nodes, deployments, services."""
    files = files_of(ctx)
    st = files.read_status()
    if output != "text":
        dump(st, output)
        return
    pid = files.controller_pid()
    running = f"running (pid {pid})" if pid else "NOT RUNNING"
    click.echo(f"lab {files.lab}: controller {running}; state {files.root}")
    click.echo(f"generation {st.get('observedGeneration')}, {'converged' if st.get('converged') else 'converging'}\n")
    print_table(node_rows(st, wide=True))
    click.echo()
    print_table(deployment_rows(st))
    click.echo()
    print_table(service_rows(st, wide=True))


# -- get ----------------------------------------------------------------------------------
def print_table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def age(created: float) -> str:
    s = int(time.time() - created)
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def pod_rows(st: dict, wide: bool, columns: list[str], reqs) -> list[list[str]]:
    head = ["NAME", "READY", "STATUS", "AGE"] + (["IP", "NODE", "VERSION"] if wide else [])
    columns = [c for c in dict.fromkeys(columns) if c.upper() not in head]  # -o wide -L version: once
    rows = [head + [c.upper() for c in columns]]
    for p in st.get("pods", []):
        if not selectors.matches(reqs, p["labels"]):
            continue
        row = [p["name"], "1/1" if p["ready"] else "0/1", p["phase"], age(p["created"])]
        if wide:
            row += [p["ip"] or "<none>", p["node"], p["version"]]
        rows.append(row + [p["labels"].get(c, "") for c in columns])
    return rows


def ports_text(svc: dict) -> str:
    """PORT(S) as kubectl prints it: 80/TCP, 80:30080/TCP, 53/UDP."""
    return ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in svc["ports"]
    )


def service_rows(st: dict, wide: bool) -> list[list[str]]:
    rows = [["NAME", "TYPE", "CLUSTER-IP", "PORT(S)"] + (["SELECTOR"] if wide else [])]
    for s in st.get("services", []):
        row = [s["name"], s["type"], s["clusterIP"] or "<pending>", ports_text(s)]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in s["selector"].items()))
        rows.append(row)
    return rows


def endpoint_rows(st: dict, wide: bool) -> list[list[str]]:
    rows = [["NAME", "ENDPOINTS"] + (["TERMINATING"] if wide else [])]
    for s in st.get("services", []):
        port = s["ports"][0]["targetPort"]
        ready = [f"{e['ip']}:{port}" for e in s["endpoints"] if e["ready"]]
        row = [s["name"], ",".join(ready) or "<none>"]
        if wide:
            row.append(",".join(f"{e['ip']}:{port}" for e in s["endpoints"] if e["terminating"]) or "<none>")
        rows.append(row)
    return rows


def node_rows(st: dict, wide: bool) -> list[list[str]]:
    rows = [["NAME", "STATUS", "INTERNAL-IP", "POD-CIDR", "PODS"] + (["AGENT", "NETNS"] if wide else [])]
    for n in st.get("nodes", []):
        count = sum(1 for p in st.get("pods", []) if p["node"] == n["name"])
        # Ready as kubectl means it: the node's network is up (its agent leased a subnet)
        row = [n["name"], "Ready" if n["subnet"] else "NotReady", n["ip"], n["subnet"] or "<none>", str(count)]
        if wide:
            row += [n.get("agent", ""), n["netns"]]
        rows.append(row)
    return rows


def deployment_rows(st: dict) -> list[list[str]]:
    rows = [["DEPLOYMENT", "READY", "UP-TO-DATE", "AVAILABLE", "VERSION", "RESTARTS"]]
    for d in st.get("deployments", []):
        rows.append(
            [d["name"], f"{d['ready']}/{d['replicas']}", d["updated"], d["available"], d["version"], d["restarts"]]
        )
    return rows


# -- into the lab -----------------------------------------------------------------------------
def find(st: dict, key: str, name: str, files: LabFiles, namespace: str | None = None) -> dict:
    """The pod, Service or node NAME: in `namespace` when given; else in default, or wherever
    the name is alone (a person's `curl svc/redis` of a one-namespace lab needs no -n)."""
    found = [x for x in st.get(key, []) if x["name"] == name]
    if key != "nodes":
        in_ns = [x for x in found if x.get("namespace", "default") == (namespace or "default")]
        if namespace or in_ns:
            found = in_ns
    if len(found) == 1:
        return found[0]
    if found:
        where = ", ".join(sorted(x.get("namespace", "default") for x in found))
        fail(f"{key[:-1]} {name!r} is in several namespaces ({where}): choose one with --namespace")
    where = f" in namespace {namespace}" if namespace else ""
    fail(f"{key[:-1]} {name!r} not found{where} in lab {files.lab}")


def source_ns(files: LabFiles, st: dict, ref: str | None, default: str, namespace: str | None = None) -> str:
    if not ref:
        return default
    kind, name = split_ref(ref, {**POD, **NODE})
    item = find(st, "pods" if kind == "pod" else "nodes", name, files, namespace)
    return item["netns"]


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("-n", "--namespace", default=None, help="The pod's namespace.")
@click.argument("ref", shell_complete=refs("pod", "node"))
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx, namespace, ref, command) -> None:
    """Run a command in a pod or node: exec [pod/]NAME|node/NAME -- CMD ARGS..."""
    files = files_of(ctx)
    kind, name = split_ref(ref if "/" in ref else f"pod/{ref}", {**POD, **NODE})  # kubectl: a bare name is a pod's
    st = files.read_status()
    env = None
    if kind == "pod":
        pod = find(st, "pods", name, files, namespace)
        ns = pod["netns"]
        dep = files.desired_spec().deployment(pod["deployment"], pod.get("namespace", "default"))
        env = {**os.environ, **busybox.pod_env(files.lab, dep.image if dep else "")}
    else:
        ns = find(st, "nodes", name, files)["netns"]
    # etc=True (through `ip netns exec`): a person's command in a pod should see the pod as a
    # container would, /sys/class/net with the pod's links and /etc/netns/NAME/* (resolv.conf,
    # hosts) over /etc; the few milliseconds it costs more do not matter to a person.
    p = netns.run(ns, list(command), etc=True, env=env)
    sys.exit(p.returncode)


def resolve_target(files: LabFiles, st: dict, target: str, namespace: str | None) -> tuple[str, int, str]:
    """(host, port, the namespace requests come from by default)."""
    with open(files.network) as f:
        net = json.load(f)
    first_node = st["nodes"][0]["netns"]
    if target.startswith(("svc/", "service/")):
        name, _, port = target.split("/", 1)[1].partition(":")  # svc/NAME[:PORT]
        svc = find(st, "services", name, files, namespace)
        if not svc["clusterIP"] or not svc["ports"]:
            fail(f"service {name!r} has no ClusterIP and port to send to")
        if port and not any(str(p["port"]) == port for p in svc["ports"]):
            fail(f"service {name!r} has no port {port}")
        return svc["clusterIP"], int(port) if port else svc["ports"][0]["port"], first_node
    if target.startswith(("pod/", "po/")):
        pod = find(st, "pods", target.split("/", 1)[1], files, namespace)
        d = files.desired_spec().deployment(pod["deployment"], pod.get("namespace", "default"))
        if not pod["ip"]:
            fail(f"pod {pod['name']} has no address yet")
        # from a node: nodes reach every pod without NAT; the outside has no route to pods
        # (as on a real cluster, where the network around the nodes knows nothing of pod subnets)
        pod_port = d.workload.port if d else 8080
        if not pod_port:
            fail(f"pod {pod['name']} declares no port to send to")
        return pod["ip"], pod_port, first_node
    if target.startswith("http://"):
        # an address from outside the nodes (a LoadBalancer's EXTERNAL-IP, a node's IP)
        hostport = target[len("http://") :].split("/", 1)[0]
        host, _, port = hostport.partition(":")
        return host, int(port) if port.isdigit() else 80, net["netns"]
    node, sep, port = target.partition(":")
    if sep and port.isdigit():
        if is_ip(node):  # an address as curl takes it: an EXTERNAL-IP or a node's IP, from outside
            return node, int(port), net["netns"]
        n = find(st, "nodes", node, files)
        return n["ip"], int(port), net["netns"]
    fail(f"{target!r}: expected svc/NAME, pod/NAME, NODE:PORT, IP:PORT or http://HOST[:PORT]/")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lab.command("curl")
@click.argument("target", shell_complete=refs("svc", "pod", extra=node_ports))
@click.option(
    "--from",
    "from_",
    shell_complete=refs("pod", "node"),
    help="pod/NAME or node/NAME to send from (default: a node for svc/ and pod/, outside for NODE:PORT).",
)
@click.option("-n", "--count", default=1, show_default=True, help="Requests to send.")
@click.option("--duration", type=float, default=0.0, help="Send for this many seconds instead.")
@click.option("--interval", type=float, default=0.0, help="Seconds between requests.")
@click.option("--summary", is_flag=True, help="Print only the tally of who answered.")
@click.option("--namespace", default=None, help="The namespace of svc/ and pod/ names (default: default).")
@click.pass_context
def curl(ctx, target, from_, count, duration, interval, summary, namespace) -> None:
    """HTTP GET svc/NAME[:PORT], pod/NAME, NODE:NODEPORT, IP:PORT or http://HOST[:PORT]/, from inside the lab."""
    files = files_of(ctx)
    st = files.read_status()
    host, port, default_ns = resolve_target(files, st, target, namespace)
    ns = source_ns(files, st, from_, default_ns, namespace)
    args = [sys.executable, "-m", "podnet.lab.client", host, str(port), "--count", str(count)]
    args += ["--duration", str(duration), "--interval", str(interval)] + (["--quiet"] if summary else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")]))}
    # from a pod, with the pod's /etc (resolv.conf): names resolve through the cluster DNS as
    # they do for the pod's own workload (http://backend/, http://web.shop.svc.cluster.local/)
    in_pod = bool(from_) and from_.startswith(("pod/", "po/"))
    p = Namespace(ns).popen(args, stdout=subprocess.PIPE, text=True, env=env, etc=in_pod)
    out, _ = p.communicate()
    lines = out.splitlines()
    # a client that died before its tally (killed, or the namespace went away) counts as one failure
    nothing = {"requests": 0, "ok": 0, "failed": 1, "seconds": 0, "pods": {}, "errors": {"client printed nothing": 1}}
    tally: dict[str, Any] = json.loads(lines[-1]) if lines else nothing
    for line in lines[:-1]:
        click.echo(line)
    if summary or count > 1 or duration:
        click.echo(f"{tally['requests']} requests, {tally['ok']} ok, {tally['failed']} failed in {tally['seconds']}s")
        for pod, n in sorted(tally["pods"].items()):
            click.echo(f"  {n:5d}  {pod}")
        for err, n in tally["errors"].items():
            click.echo(f"  {n:5d}  {err}")
    sys.exit(0 if tally["failed"] == 0 else 1)


def _root() -> str:
    from cni.install import package_root

    return package_root()


# kubectl's verbs (apply|create|delete -f, get, describe, logs, scale, set image, rollout)
from podnet.lab import kubectl  # noqa: E402,F401  (registers them on `lab`)

__all__ = ["lab", "LabNotFound"]
