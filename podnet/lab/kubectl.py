"""`podnet lab` verbs in kubectl's words: apply|create|delete -f, get, describe, logs, scale,
set image, rollout status|history|undo|restart, create deployment|namespace, expose, with
namespaces (-n, -A) and kubectl's columns.

Objects live in namespaces (`default` unless given). Deployment revisions are kept in the
lab's desired state as kube keeps them in ReplicaSets: one per pod template, named
DEPLOYMENT-<pod-template-hash>, numbered; `rollout undo` makes an earlier template current
again (under a new number, as kube does).
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

import netns
from podnet.lab import busybox, creation, imperative, manifests, netpols, podlogs, selectors, spec
from podnet.lab.cli import age, dump, fail, files_of, lab, ports_text, print_table, wait_converged
from podnet.lab.complete import refs, words
from podnet.lab.state import LabFiles

ALL = "*"
KIND_WORDS = {
    **{k: "pod" for k in ("pod", "pods", "po")},
    **{k: "service" for k in ("svc", "service", "services")},
    **{k: "deployment" for k in ("deploy", "deployment", "deployments", "deployments.apps")},
    **{k: "replicaset" for k in ("rs", "replicaset", "replicasets")},
    **{k: "endpoints" for k in ("ep", "endpoints")},
    **{k: "endpointslice" for k in ("endpointslice", "endpointslices", "endpointslices.discovery.k8s.io")},
    **{k: "namespace" for k in ("ns", "namespace", "namespaces")},
    **{k: "node" for k in ("no", "node", "nodes")},
    **{k: "networkpolicy" for k in ("netpol", "networkpolicy", "networkpolicies", "networkpolicies.networking.k8s.io")},
}
RESOURCE = {
    "pod": "pod",
    "service": "service",
    "deployment": "deployment.apps",
    "replicaset": "replicaset.apps",
    "endpoints": "endpoints",
    "endpointslice": "endpointslice.discovery.k8s.io",
    "namespace": "namespace",
    "node": "node",
    "networkpolicy": "networkpolicy.networking.k8s.io",
}
NAMESPACED = {"pod", "service", "deployment", "replicaset", "endpoints", "endpointslice", "networkpolicy"}


def ns_options(f):
    f = click.option("-A", "--all-namespaces", "all_ns", is_flag=True, help="Every namespace.")(f)
    return click.option("-n", "--namespace", default=None, help="The namespace (default: default).")(f)


def namespace_of(namespace: str | None, all_ns: bool) -> str:
    return ALL if all_ns else namespace or spec.DEFAULT_NAMESPACE


def in_ns(item: dict, ns: str) -> bool:
    return ns == ALL or item.get("namespace", spec.DEFAULT_NAMESPACE) == ns


def kind_and_name(args: tuple[str, ...]) -> tuple[str, str | None]:
    """`pods`, `pod NAME` or `pod/NAME` -> (kind, name)."""
    first = args[0]
    kind, sep, name = first.partition("/")
    if kind not in KIND_WORDS:
        fail(f'the server doesn\'t have a resource type "{kind}"')
    if sep:
        return KIND_WORDS[kind], name
    return KIND_WORDS[kind], (args[1] if len(args) > 1 else None)


# -- revisions (ReplicaSets) -----------------------------------------------------------------
def _revisions(data: dict, key: str) -> list[dict]:
    return data.setdefault("revisions", {}).setdefault(key, [])


def record_revision(data: dict, dep: dict) -> None:
    """After a Deployment's template changed (or it was created): its template is the newest
    revision; a template seen before keeps its ReplicaSet and moves to the top."""
    d = spec.parse_deployment(dep, "deployment")
    revs = _revisions(data, d.key)
    template = d.template_hash()
    number = max((r["revision"] for r in revs), default=0) + 1
    if revs and revs[-1]["template"] == template:
        return
    revs[:] = [r for r in revs if r["template"] != template]
    body = {k: v for k, v in dep.items() if k != "replicas"}
    revs.append({"revision": number, "template": template, "deployment": body})


def _find(items: list[dict], name: str, namespace: str) -> int | None:
    for i, x in enumerate(items):
        if x["name"] == name and x.get("namespace", spec.DEFAULT_NAMESPACE) == namespace:
            return i
    return None


def _same_template(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "replicas"} == {k: v for k, v in b.items() if k != "replicas"}


# -- apply, create, delete -f ----------------------------------------------------------------
def load_manifests(filenames: tuple[str, ...], namespace: str | None) -> list[manifests.Object]:
    objs: list[manifests.Object] = []
    try:
        for f in filenames:
            objs += manifests.load(f, namespace)
    except spec.SpecError as e:
        fail(f"error: {e}")
    return objs


def ref_of(kind: str, o: Any) -> str:
    if kind == "NetworkPolicy":
        return f"networkpolicy.networking.k8s.io/{o['metadata']['name']}"
    return (
        {"Namespace": "namespace", "Deployment": "deployment.apps", "Pod": "pod", "Service": "service"}[kind]
        + "/"
        + (o if kind == "Namespace" else o.name)
    )


def _check_pod_put(items: list[dict], pod: spec.Deployment, old: int | None) -> None:
    """A Pod's name is its network namespace's, lab-wide; and, as the API server says, a pod's
    spec does not change (delete it and make it again)."""
    if old is not None and not items[old].get("bare"):
        fail(f'error: pod "{pod.name}": a lab keeps Deployments and Pods by one name, and deployment '
             f'"{pod.name}" has it in namespace {pod.namespace}')  # fmt: skip
    if old is None and any(x.get("bare") and x["name"] == pod.name for x in items):
        fail(f'error: pod "{pod.name}": a lab names pods lab-wide, and another namespace has one of that name')
    if old is not None and items[old] != spec.deployment_dict(pod):
        fail(
            f'The Pod "{pod.name}" is invalid: spec: Forbidden: pod updates may not change its fields '
            "(a lab pod's spec is fixed: delete it and apply again)"
        )


def put_objects(files: LabFiles, objs: list[manifests.Object], create_only: bool) -> tuple[int, dict[str, str]]:
    results: dict[str, str] = {}

    def put(data: dict) -> None:
        results.clear()
        s = data["spec"]
        for kind, o in objs:
            if kind == "NamespaceLabels":
                ref = f"namespace/{o[0]}"
                if netpols.set_namespace_labels(data, *o) and results.get(ref) == "unchanged":
                    results[ref] = "configured"
                continue
            ref = ref_of(kind, o)
            if kind == "Namespace":
                present = o in spec.SYSTEM_NAMESPACES or o in s.get("namespaces", [])
                if present and create_only:
                    fail(f'Error from server (AlreadyExists): namespaces "{o}" already exists')
                if not present:
                    s["namespaces"] = [*s.get("namespaces", spec.SYSTEM_NAMESPACES), o]
                    creation.stamp(data, "namespace", "", o)
                results[ref] = "unchanged" if present else "created"
                continue
            if kind == "NetworkPolicy":
                known = [*spec.SYSTEM_NAMESPACES, *s.get("namespaces", [])]
                try:
                    results[ref] = netpols.put(data, o, known, create_only)
                except netpols.Refused as e:
                    fail(str(e))
                continue
            key = "services" if kind == "Service" else "deployments"  # a bare Pod is kept as one
            body = spec.service_dict(o) if kind == "Service" else spec.deployment_dict(o)
            items = s[key]
            old = _find(items, o.name, o.namespace)
            if kind == "Pod":
                _check_pod_put(items, o, old)
            elif kind == "Deployment" and old is not None and items[old].get("bare"):
                fail(f'error: deployment "{o.name}": a lab keeps Deployments and Pods by one name, and pod "{o.name}" '
                     f"has it in namespace {o.namespace}")  # fmt: skip
            if old is not None and create_only:
                plural = {"Deployment": "deployments.apps", "Pod": "pods", "Service": "services"}[kind]
                fail(f'Error from server (AlreadyExists): {plural} "{o.name}" already exists')
            if old is None:
                items.append(body)
                creation.stamp(data, kind.lower(), o.namespace, o.name)
                results[ref] = "created"
            elif items[old] == body:
                results[ref] = "unchanged"
            else:
                # kubectl apply keeps an annotation the manifest does not manage: a `rollout
                # restart`'s restartedAt survives applying the file again (no second rollout)
                if kind == "Deployment" and "restartedAt" in items[old] and "restartedAt" not in body:
                    body["restartedAt"] = items[old]["restartedAt"]
                results[ref] = "unchanged" if items[old] == body else "configured"
                items[old] = body
            if kind == "Deployment":
                record_revision(data, body)
        for i, ns in enumerate(s.get("namespaces", [])):
            spec._namespace(ns, f"namespaces[{i}]")

    try:
        return files.change(put), results
    except spec.SpecError as e:
        fail(f"error: {e}")


# The lab waits by default where kubectl returns at once: a person's next command then meets
# the new pods programmed on every node, not a transient. --no-wait is kubectl's behaviour
# (and the way to apply a Deployment that can never become available).
WAIT = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Return only when the changed Deployments' pods are available on every node.",
)


@lab.command("apply")
@click.option("-f", "--filename", "filenames", multiple=True, required=True, type=click.Path(exists=True))
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@WAIT
@click.pass_context
def apply(ctx, filenames, namespace, wait) -> None:
    """Create or change objects from Kubernetes manifests (files or directories)."""
    _apply(ctx, filenames, namespace, create_only=False, wait=wait)


@lab.command("create")
@click.argument("args", nargs=-1, shell_complete=words("deployment", "namespace"))
@click.option("-f", "--filename", "filenames", multiple=True, type=click.Path(exists=True))
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@click.option("--image", help="create deployment: the image its pods run.")
@click.option("--replicas", type=click.IntRange(0, 5000), default=1, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), help="create deployment: the container port.")
@WAIT
@click.pass_context
def create(ctx, args, filenames, namespace, image, replicas, port, wait) -> None:
    """create -f FILE|DIR, create deployment NAME --image=IMAGE [-- COMMAND ARGS...], or
    create namespace NAME; an object that exists already is an error."""
    if filenames:
        if args:
            fail("error: give -f FILE or KIND NAME, not both")
        _apply(ctx, filenames, namespace, create_only=True, wait=wait)
        return
    if len(args) < 2:
        fail("error: give -f FILE, deployment NAME --image=IMAGE, or namespace NAME")
    kind, name, command = KIND_WORDS.get(args[0]), args[1], tuple(args[2:])
    if kind == "deployment":
        if not image:
            fail('error: required flag(s) "image" not set')
        doc = imperative.deployment_manifest(name, image, replicas, port, command, namespace)
    elif kind == "namespace" and not command:
        doc = imperative.namespace_manifest(name)
    else:
        fail(f"error: a lab creates deployments and namespaces this way, not {args[0]!r}; use -f")
    _put(ctx, _parsed([doc], "create", namespace), create_only=True, wait=wait)


def _parsed(docs: list[dict], where: str, namespace: str | None) -> list[manifests.Object]:
    try:
        return manifests.parse_objects(docs, where, namespace)
    except spec.SpecError as e:
        fail(f"error: {e}")


def _apply(ctx, filenames, namespace, create_only: bool, wait: bool) -> None:
    _put(ctx, load_manifests(filenames, namespace), create_only, wait)


def _put(ctx, objs: list[manifests.Object], create_only: bool, wait: bool) -> None:
    files = files_of(ctx)
    gen, results = put_objects(files, objs, create_only)
    if wait:
        deps = tuple(o.key for k, o in objs if k == "Deployment")
        wait_converged(files, gen, "apply", deps)
    for ref, result in results.items():
        click.echo(f"{ref} {result}")


def _delete_objects(files: LabFiles, targets: list[tuple[str, str, str]], ignore_missing: bool) -> tuple[int, list]:
    """targets: (kind, namespace, name) of Deployments, bare Pods, Services, Namespaces and
    NetworkPolicies."""
    done: list[str] = []

    def drop(data: dict) -> None:
        done.clear()
        s = data["spec"]
        for kind, ns, name in targets:
            if kind == "namespace":
                if name in spec.SYSTEM_NAMESPACES:
                    fail(
                        f'Error from server (Forbidden): namespaces "{name}" is forbidden: '
                        "this namespace may not be deleted"
                    )
                if name in s.get("namespaces", []):
                    s["namespaces"].remove(name)
                    for key in ("deployments", "services"):  # what it holds goes with it
                        s[key] = [o for o in s[key] if o.get("namespace", spec.DEFAULT_NAMESPACE) != name]
                    netpols.drop_namespace(data, name)
                    creation.forget(data, "namespace", "", name)
                    creation.forget_namespace(data, name)
                    done.append(f'namespace "{name}" deleted')
                elif not ignore_missing:
                    fail(f'Error from server (NotFound): namespaces "{name}" not found')
                continue
            if kind == "networkpolicy":
                if netpols.drop(data, ns, name):
                    done.append(f'networkpolicy.networking.k8s.io "{name}" deleted')
                elif not ignore_missing:
                    fail(f'Error from server (NotFound): networkpolicies.networking.k8s.io "{name}" not found')
                continue
            key = "services" if kind == "service" else "deployments"
            i = _find(s[key], name, ns)
            if i is not None and kind != "service" and bool(s[key][i].get("bare")) != (kind == "pod"):
                i = None  # a Deployment is no bare Pod, nor the other way round
            if i is None:
                if not ignore_missing:
                    plural = {"deployment": "deployments.apps", "pod": "pods", "service": "services"}[kind]
                    fail(f'Error from server (NotFound): {plural} "{name}" not found')
                continue
            del s[key][i]
            creation.forget(data, kind, ns, name)
            if kind == "deployment":
                data.get("revisions", {}).pop(f"{ns}/{name}", None)
            done.append(f'{ {"deployment": "deployment.apps"}.get(kind, kind) } "{name}" deleted')

    try:
        return files.change(drop), done
    except spec.SpecError as e:
        fail(f"error: {e}")


def _target(kind: str, o: Any) -> tuple[str, str, str]:
    """(kind, namespace, name) of a manifest's object, for _delete_objects."""
    if kind == "Namespace":
        return "namespace", "", o
    if kind == "NetworkPolicy":
        return "networkpolicy", o["metadata"]["namespace"], o["metadata"]["name"]
    return kind.lower(), o.namespace, o.name


@lab.command("delete")
@click.argument("args", nargs=-1, shell_complete=refs("pod", "deploy", "svc"))
@click.option("-f", "--filename", "filenames", multiple=True, type=click.Path(exists=True))
@click.option("--ignore-not-found", is_flag=True)
@ns_options
@click.pass_context
def delete(ctx, args, filenames, ignore_not_found, namespace, all_ns) -> None:
    """delete pod|deploy|svc|ns NAME (or KIND/NAME), or delete -f FILE|DIR."""
    files = files_of(ctx)
    ns = namespace_of(namespace, all_ns)
    if filenames:
        objs = load_manifests(filenames, namespace)
        targets = [_target(k, o) for k, o in objs if k != "NamespaceLabels"]
        gen, done = _delete_objects(files, targets, ignore_not_found)
    else:
        if not args:
            fail("error: give KIND NAME, KIND/NAME or -f FILE")
        kind, name = kind_and_name(args)
        if name is None:
            fail("error: resource(s) were provided, but no name was specified")
        bare = any(d.get("bare") and d["name"] == name and d.get("namespace", spec.DEFAULT_NAMESPACE) == ns
                   for d in files.read_desired()["spec"]["deployments"])  # fmt: skip
        if kind == "pod" and not bare:  # a Deployment's pod: it makes another
            st = files.read_status()
            if not any(p["name"] == name and in_ns(p, ns) for p in st.get("pods", [])):
                if ignore_not_found:
                    return
                fail(f'Error from server (NotFound): pods "{name}" not found')
            files.request_delete(name)
            click.echo(f'pod "{name}" deleted')
            return
        if kind not in ("deployment", "pod", "service", "namespace", "networkpolicy"):
            fail(f"error: a lab deletes pods, deployments, services, namespaces and networkpolicies, not {kind}")
        gen, done = _delete_objects(files, [(kind, ns, name)], ignore_not_found)
    wait_converged(files, gen, "delete")
    for line in done:
        click.echo(line)


@lab.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", required=True, help="The image the pod stands for (README: images -> workloads).")
@click.option("-l", "--labels", help="k=v,k=v (default: run=NAME).")
@click.option("--port", type=click.IntRange(1, 65535), help="The container port.")
@click.option("--env", multiple=True, help="K=V, repeatable.")
@click.option("-n", "--namespace", default=None)
@click.option("-i", "--stdin", is_flag=True, help="Run COMMAND in the pod attached to this terminal.")
@click.option("-t", "--tty", is_flag=True, help="As -i.")
@click.option("--rm", is_flag=True, help="With -i/-t: delete the pod when COMMAND ends.")
@click.option("--restart", type=click.Choice(["Always", "Never", "OnFailure"]), default="Always")
@WAIT
@click.pass_context
def run(ctx, name, command, image, labels, port, env, namespace, stdin, tty, rm, restart, wait) -> None:
    """run NAME --image=IMAGE [-l k=v] [--port P] [-- COMMAND ARGS...]: a bare pod, as kubectl
    run makes it. With -i/-t (and --rm), COMMAND (default sh) runs in the new pod attached to
    this terminal, as `kubectl run -it --rm` does: the pod's address, labels and DNS are its."""
    attached = stdin or tty
    if not attached and (rm or restart != "Always"):
        fail("error: --rm and --restart=Never|OnFailure go with -i/-t here: a detached lab pod restarts Always")
    pairs = [p.partition("=") for p in env]
    if any(not eq or not k for k, eq, _ in pairs):
        fail("error: --env: expected K=V")
    pod_labels = _equality_labels(labels, "--labels") if labels else {"run": name}
    # attached: the pod's own process stands by and COMMAND runs in the pod beside it; a lab
    # pod runs this machine's programs, so what the person sees is what kubectl attach shows
    pod_command = ("sleep", "2147483647") if attached else tuple(command)  # (busybox's sleep has no "infinity")
    doc = imperative.pod_manifest(name, image, pod_labels, port, pod_command, namespace, {k: v for k, _, v in pairs})
    _put(ctx, _parsed([doc], "run", namespace), create_only=True, wait=wait or attached)
    if not attached:
        return
    files = files_of(ctx)
    ns = namespace or spec.DEFAULT_NAMESPACE
    pod = next(p for p in files.read_status()["pods"] if p["name"] == name and in_ns(p, ns))
    try:
        # the pod's environment as its workload has it (--env; POD_NAME ...), over this one's
        env_vars = {**os.environ, **busybox.pod_env(files.lab, image), **{k: v for k, _, v in pairs}, "POD_NAME": name}
        code = netns.run(pod["netns"], list(command) or ["sh"], etc=True, env=env_vars).returncode
    finally:
        if rm:
            gen, done = _delete_objects(files, [("pod", ns, name)], ignore_missing=True)
            wait_converged(files, gen, "delete")
            for line in done:
                click.echo(line)
    sys.exit(code)


@lab.command("expose")
@click.argument("args", nargs=-1, required=True, shell_complete=refs("deploy", "svc", "pod"))
@click.option("--name", help="The Service's name (default: the exposed object's).")
@click.option("--port", help="The Service's port (default: the container's ports).")
@click.option("--target-port", help="The port (number or name) on the pods (default: --port).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"]), help="default: the container port's")
@click.option("--type", "type_", help="ClusterIP (default), NodePort or LoadBalancer.")
@click.option("--selector", help="Pods to send to, e.g. app=web (default: the exposed object's).")
@click.option("-n", "--namespace", default=spec.DEFAULT_NAMESPACE)
@click.pass_context
def expose(ctx, args, name, port, target_port, protocol, type_, selector, namespace) -> None:
    """expose deployment|svc|pod NAME [--port P] [--target-port T] [--type T] [--name N]: a
    Service for what is there, as kubectl makes it."""
    kind, target_name = kind_and_name(args)
    if target_name is None or len(args) > (1 if "/" in args[0] else 2):
        fail("error: expected expose KIND NAME or KIND/NAME")
    files = files_of(ctx)
    target = _exposed(files, kind, target_name, namespace)
    wanted = _equality_labels(selector, "--selector") if selector else None
    opts = imperative.ExposeOptions(name, port, target_port, protocol, type_, wanted)
    try:
        doc = imperative.service_manifest(target, opts)
    except spec.SpecError as e:
        fail(f"error: {e}")
    objs = _parsed([doc], "expose", namespace)
    gen, _ = put_objects(files, objs, create_only=True)
    wait_converged(files, gen, "expose")
    click.echo(f"service/{doc['metadata']['name']} exposed")


def _equality_labels(text: str, flag: str) -> dict[str, str]:
    """KEY=VALUE[,KEY=VALUE...], as run's --labels and expose's --selector take them."""
    try:
        reqs: tuple[selectors.Requirement, ...] | None = selectors.parse(text)
    except selectors.SelectorError:
        reqs = None
    if reqs is None or any(r.op != "=" for r in reqs):
        fail(f"error: {flag}: {text!r} is not KEY=VALUE[,KEY=VALUE...]")
    return {r.key: r.value for r in reqs}


def _exposed(files: LabFiles, kind: str, name: str, ns: str) -> imperative.Exposed:
    desired = cli_spec(files)
    if kind == "deployment":
        d = desired.deployment(name, ns)
        if d is None:
            fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
        ports = manifests.container_object(d).get("ports", [])
        return imperative.Exposed(kind, name, ns, dict(d.labels), _container_ports(ports))
    if kind == "service":
        svc = desired.service(name, ns)
        if svc is None:
            fail(f'Error from server (NotFound): services "{name}" not found')
        return imperative.Exposed(kind, name, ns, dict(svc.selector), tuple((p.port, p.protocol) for p in svc.ports))
    if kind == "pod":
        pod = next((p for p in files.read_status().get("pods", []) if p["name"] == name and in_ns(p, ns)), None)
        if pod is None:
            fail(f'Error from server (NotFound): pods "{name}" not found')
        d = desired.deployment(pod["deployment"], ns)
        ports = manifests.container_object(d).get("ports", []) if d else []
        return imperative.Exposed(kind, name, ns, dict(pod["labels"]), _container_ports(ports))
    fail(f"error: a lab exposes deployments, services and pods, not {kind}")


def _container_ports(ports: list[dict]) -> tuple[tuple[int, str], ...]:
    return tuple((p["containerPort"], p.get("protocol", "TCP")) for p in ports)


# -- get ---------------------------------------------------------------------------------------
def _ns_col(ns: str) -> list[str]:
    return ["NAMESPACE"] if ns == ALL else []


def _ns_val(item: dict, ns: str) -> list[str]:
    return [item.get("namespace", spec.DEFAULT_NAMESPACE)] if ns == ALL else []


def pod_rows(st, ns, wide, cols, reqs, name, show_labels=False) -> list[list[str]]:
    head = _ns_col(ns) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
    rows = [head + [c.upper() for c in cols] + (["LABELS"] if show_labels else [])]
    for p in st.get("pods", []):
        if not in_ns(p, ns) or not selectors.matches(reqs, p["labels"]) or (name and p["name"] != name):
            continue
        phase = {"Attaching": "ContainerCreating", "Starting": "ContainerCreating", "Deleting": "Terminating"}
        row = _ns_val(p, ns) + [p["name"], "1/1" if p["ready"] else "0/1", phase.get(p["phase"], p["phase"])]
        row += [str(p.get("restarts", 0)), age(p["created"])]
        if wide:
            row += [p["ip"] or "<none>", p["node"]]
        row += [p["labels"].get(c, "") for c in cols]
        if show_labels:  # as kubectl: k=v pairs sorted by key
            row.append(",".join(f"{k}={v}" for k, v in sorted(p["labels"].items())) or "<none>")
        rows.append(row)
    return rows


def service_rows(st, ns, wide, reqs, name, born) -> list[list[str]]:
    rows = [
        _ns_col(ns) + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if wide else [])
    ]
    for s in st.get("services", []):
        if not in_ns(s, ns) or (name and s["name"] != name) or not selectors.matches(reqs, s["selector"]):
            continue
        ext = s.get("externalIP") or ("<pending>" if s["type"] == "LoadBalancer" else "<none>")
        created = born("service", s.get("namespace", spec.DEFAULT_NAMESPACE), s["name"])
        row = _ns_val(s, ns) + [s["name"], s["type"], s["clusterIP"] or "<pending>", ext, ports_text(s), created]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in s["selector"].items()))
        rows.append(row)
    return rows


def endpoint_rows(st, ns, name, born) -> list[list[str]]:
    rows = [_ns_col(ns) + ["NAME", "ENDPOINTS", "AGE"]]
    for s in st.get("services", []):
        if not in_ns(s, ns) or (name and s["name"] != name):
            continue
        port = s["ports"][0]["targetPort"]
        ready = [f"{e['ip']}:{port}" for e in s["endpoints"] if e["ready"]]
        text = ",".join(ready[:3]) + (f" + {len(ready) - 3} more..." if len(ready) > 3 else "")
        created = born("service", s.get("namespace", spec.DEFAULT_NAMESPACE), s["name"])
        rows.append(_ns_val(s, ns) + [s["name"], text or "<none>", created])
    return rows


def endpointslice_rows(st, ns, name, born) -> list[list[str]]:
    rows = [_ns_col(ns) + ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]]
    for s in st.get("services", []):
        if not in_ns(s, ns) or (name and f"{s['name']}-lab" != name):
            continue
        ips = [e["ip"] for e in s["endpoints"]]
        text = ",".join(ips[:3]) + (f" + {len(ips) - 3} more..." if len(ips) > 3 else "")
        ports = ",".join(str(p["targetPort"]) for p in s["ports"])
        created = born("service", s.get("namespace", spec.DEFAULT_NAMESPACE), s["name"])
        rows.append(_ns_val(s, ns) + [f"{s['name']}-lab", "IPv4", ports, text or "<unset>", created])
    return rows


def deployment_rows(st, ns, wide, name, born) -> list[list[str]]:
    rows = [
        _ns_col(ns) + ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (["VERSION", "RESTARTS"] if wide else [])
    ]
    for d in st.get("deployments", []):
        if not in_ns(d, ns) or (name and d["name"] != name):
            continue
        created = born("deployment", d.get("namespace", spec.DEFAULT_NAMESPACE), d["name"])
        row = _ns_val(d, ns) + [d["name"], f"{d['ready']}/{d['replicas']}", str(d["updated"]), str(d["available"])]
        row.append(created)
        if wide:
            row += [d["version"], str(d["restarts"])]
        rows.append(row)
    return rows


def replicasets(files: LabFiles, st: dict) -> list[dict]:
    """Every revision of every Deployment, as the ReplicaSet kube would keep for it."""
    data = files.read_desired()
    out = []
    for d in st.get("deployments", []):
        key = f"{d.get('namespace', 'default')}/{d['name']}"
        revs = {r["template"]: r["revision"] for r in data.get("revisions", {}).get(key, [])}
        for t in dict.fromkeys([*revs, *d.get("replicaSets", {})]):
            rs = d.get("replicaSets", {}).get(t, {"pods": 0, "ready": 0})
            desired = d["replicas"] if t == d.get("template") else rs["pods"]
            rs_ns = d.get("namespace", "default")
            out.append({"name": f"{d['name']}-{t}", "namespace": rs_ns, "desired": desired, "current": rs["pods"],
                        "ready": rs["ready"], "revision": revs.get(t, 0), "deployment": d["name"]})  # fmt: skip
    return out


def rs_rows(files, st, ns, name) -> list[list[str]]:
    rows = [_ns_col(ns) + ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]]
    for rs in replicasets(files, st):
        if in_ns(rs, ns) and (not name or rs["name"] == name):
            rows.append(_ns_val(rs, ns) + [rs["name"], str(rs["desired"]), str(rs["current"]), str(rs["ready"]), ""])
    return rows


def namespace_rows(st, name, born) -> list[list[str]]:
    names = [n for n in st.get("namespaces", []) if not name or n == name]
    return [["NAME", "STATUS", "AGE"]] + [[n, "Active", born("namespace", "", n)] for n in names]


def netpol_rows(files: LabFiles, ns, name) -> list[list[str]]:
    rows = [_ns_col(ns) + ["NAME", "POD-SELECTOR", "AGE"]]
    for o in netpols.listed(files.read_desired(), None if ns == ALL else ns, name):
        row = [o["metadata"]["name"], netpols.pod_selector_text(o), age(netpols.created(o))]
        rows.append(([o["metadata"]["namespace"]] if ns == ALL else []) + row)
    return rows


def node_rows(st, wide, name, born) -> list[list[str]]:
    rows = [["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (["INTERNAL-IP", "POD-CIDR"] if wide else [])]
    for n in st.get("nodes", []):
        if name and n["name"] != name:
            continue
        row = [n["name"], "Ready" if n["subnet"] else "NotReady", "<none>", born("node", "", n["name"]), "podnet-lab"]
        if wide:
            row += [n["ip"], n["subnet"] or "<none>"]
        rows.append(row)
    return rows


def objects_of(files: LabFiles, st: dict, kind: str, ns: str, reqs, name: str | None) -> list[dict]:
    """Kubernetes objects for -o json|yaml: Services and Deployments as the API server holds them."""
    desired = cli_spec(files)
    out: list[dict] = []
    if kind == "service":
        for s in st.get("services", []):
            svc = desired.service(s["name"], s.get("namespace", "default"))
            if svc and in_ns(s, ns) and (not name or s["name"] == name):
                np = {p["port"]: p["nodePort"] for p in s["ports"]}
                out.append(manifests.service_object(svc, desired, s["clusterIP"], np, s.get("externalIP")))
    elif kind == "deployment":
        data = files.read_desired()
        for d in st.get("deployments", []):
            dep = desired.deployment(d["name"], d.get("namespace", "default"))
            if dep and in_ns(d, ns) and (not name or d["name"] == name):
                revs = data.get("revisions", {}).get(dep.key, [])
                out.append(manifests.deployment_object(dep, d, revs[-1]["revision"] if revs else 1))
    elif kind == "namespace":
        out = [manifests.namespace_object(n) for n in st.get("namespaces", []) if not name or n == name]
    elif kind == "networkpolicy":
        out = netpols.listed(files.read_desired(), None if ns == ALL else ns, name)
    elif kind == "pod":
        out = [p for p in st.get("pods", []) if in_ns(p, ns) and selectors.matches(reqs, p["labels"])
               and (not name or p["name"] == name)]  # fmt: skip
    else:
        key = {"node": "nodes", "endpoints": "services", "endpointslice": "services"}.get(kind)
        out = [x for x in st.get(key, []) if in_ns(x, ns) and (not name or x["name"] == name)] if key else []
        if kind == "replicaset":
            out = [rs for rs in replicasets(files, st) if in_ns(rs, ns) and (not name or rs["name"] == name)]
    return out


def cli_spec(files: LabFiles) -> spec.LabSpec:
    from podnet.lab import dns

    return dns.with_cluster_dns(files.desired_spec())


def render(files, st, kind, ns, wide, cols, reqs, name, show_labels=False) -> list[list[str]]:
    born = ages(files)
    return {
        "pod": lambda: pod_rows(st, ns, wide, cols, reqs, name, show_labels),
        "service": lambda: service_rows(st, ns, wide, reqs, name, born),
        "endpoints": lambda: endpoint_rows(st, ns, name, born),
        "endpointslice": lambda: endpointslice_rows(st, ns, name, born),
        "deployment": lambda: deployment_rows(st, ns, wide, name, born),
        "replicaset": lambda: rs_rows(files, st, ns, name),
        "namespace": lambda: namespace_rows(st, name, born),
        "node": lambda: node_rows(st, wide, name, born),
        "networkpolicy": lambda: netpol_rows(files, ns, name),
    }[kind]()


def ages(files: LabFiles) -> Callable[[str, str, str], str]:
    """AGE of (kind, namespace, name): from its creation stamp, else the lab's own age (the
    network file is written once, when the lab is made)."""
    data = files.read_desired()
    lab_born = os.path.getmtime(files.network)
    return lambda kind, ns, name: age(creation.created(data, kind, ns, name, lab_born))


@lab.command("get")
@click.argument("args", nargs=-1, required=True, shell_complete=words("pods", "services", "deployments", "rs",
                "endpoints", "endpointslices", "namespaces", "nodes", "networkpolicies"))  # fmt: skip
@click.option("-l", "--selector", help="Label selector, e.g. app=frontend,track!=canary")
@click.option("-L", "--label-columns", multiple=True, help="Show this label as a column (repeatable).")
@click.option("-o", "--output", type=click.Choice(["text", "wide", "json", "yaml", "name"]), default="text")
@click.option("-w", "--watch", is_flag=True, help="After the list, print rows as they change.")
@click.option("--show-labels", is_flag=True, help="Pods: every label, as a last column.")
@ns_options
@click.pass_context
def get(ctx, args, selector, label_columns, output, watch, show_labels, namespace, all_ns) -> None:
    """get pods|svc|deploy|rs|endpoints|endpointslices|ns|nodes|netpol [NAME], as kubectl shows them."""
    kind, name = kind_and_name(args)
    try:
        reqs = selectors.parse(selector)
    except selectors.SelectorError as e:
        fail(str(e))
    ns = namespace_of(namespace, all_ns) if kind in NAMESPACED else ALL
    files = files_of(ctx)
    st = files.read_status()
    if output in ("json", "yaml", "name"):
        items = objects_of(files, st, kind, ns, reqs, name)
        if output == "name":
            for item in items:
                click.echo(f"{RESOURCE[kind]}/{item.get('name') or item['metadata']['name']}")
        elif name and len(items) == 1:
            dump(items[0], output)
        else:
            dump({"apiVersion": "v1", "kind": "List", "items": items}, output)
        return
    wide = output == "wide"
    cols = [c for arg in label_columns for c in arg.split(",")]
    if show_labels and kind != "pod":
        fail("error: --show-labels: a lab shows the labels of pods only")
    rows = render(files, st, kind, ns, wide, cols, reqs, name, show_labels)
    if len(rows) == 1 and not watch:
        if name:
            fail(f'Error from server (NotFound): {kind}s "{name}" not found')
        click.echo("No resources found" + ("." if ns == ALL else f" in {ns} namespace."))
        return
    widths = print_rows(rows, None)
    if not watch:
        return
    seen = {tuple(r) for r in rows[1:]}
    try:
        while True:
            time.sleep(0.5)
            st = files.read_status()
            rows = render(files, st, kind, ns, wide, cols, reqs, name, show_labels)
            for r in rows[1:]:
                if tuple(r) not in seen:
                    print_rows([r], widths)
            seen = {tuple(r) for r in rows[1:]}
    except KeyboardInterrupt:
        pass


def print_rows(rows: list[list[str]], widths: list[int] | None) -> list[int]:
    widths = widths or [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    return widths


# -- describe, logs ------------------------------------------------------------------------------
@lab.command("describe")
@click.argument("args", nargs=-1, required=True, shell_complete=refs("pod", "deploy", "svc"))
@ns_options
@click.pass_context
def describe(ctx, args, namespace, all_ns) -> None:
    """describe pod|svc|deploy|netpol NAME: the object, its state and the lab's view of it."""
    kind, name = kind_and_name(args)
    files = files_of(ctx)
    st = files.read_status()
    ns = namespace_of(namespace, all_ns)
    desired = cli_spec(files)
    lines: list[tuple[str, str]] = []
    if kind == "pod":
        p = next((x for x in st.get("pods", []) if x["name"] == name and in_ns(x, ns)), None)
        if p is None:
            fail(f'Error from server (NotFound): pods "{name}" not found')
        dep = desired.deployment(p["deployment"], p.get("namespace", "default"))
        lines += [("Name", p["name"]), ("Namespace", p.get("namespace", "default")), ("Node", f"{p['node']}")]
        lines += [("Labels", ",".join(f"{k}={v}" for k, v in p["labels"].items())), ("Status", p["phase"])]
        lines += [
            ("IP", p["ip"] or "<none>"),
            ("Controlled By", f"ReplicaSet/{p['deployment']}-{p.get('template', '')}"),
        ]
        if dep:
            lines += [("Image", dep.image or f"(lab workload {dep.workload.kind})"), ("Workload", dep.workload.kind)]
            lines += [("Port", f"{dep.workload.port}/TCP" if dep.workload.port else "<none>")]
            for label, probe in (("Readiness", dep.readiness), ("Liveness", dep.liveness)):
                if probe:
                    lines.append((label, probe_text(probe)))
        lines += [("Ready", str(p["ready"])), ("Restart Count", str(p.get("restarts", 0)))]
    elif kind == "service":
        s = next((x for x in st.get("services", []) if x["name"] == name and in_ns(x, ns)), None)
        if s is None:
            fail(f'Error from server (NotFound): services "{name}" not found')
        lines += [("Name", s["name"]), ("Namespace", s.get("namespace", "default")), ("Type", s["type"])]
        lines += [("Selector", ",".join(f"{k}={v}" for k, v in s["selector"].items())), ("IP", s["clusterIP"] or "")]
        if s.get("externalIP"):
            lines.append(("LoadBalancer Ingress", s["externalIP"]))
        for p in s["ports"]:
            lines.append(("Port", f"{p.get('name') or '<unset>'}  {p['port']}/{p.get('protocol', 'TCP')}"))
            lines.append(("TargetPort", f"{p['targetPort']}/{p.get('protocol', 'TCP')}"))
            if p.get("nodePort"):
                lines.append(("NodePort", f"{p.get('name') or '<unset>'}  {p['nodePort']}/{p.get('protocol', 'TCP')}"))
            # as kubectl: per port, IP:PORT (a named targetPort is each pod's own number: IP alone)
            suffix = f":{p['targetPort']}" if isinstance(p["targetPort"], int) else ""
            ready = [f"{e['ip']}{suffix}" for e in s["endpoints"] if e["ready"]]
            lines.append(("Endpoints", ",".join(ready) or "<none>"))
        if not s["ports"]:
            lines.append(("Endpoints", ",".join(e["ip"] for e in s["endpoints"] if e["ready"]) or "<none>"))
        svc = desired.service(s["name"], s.get("namespace", "default"))
        if svc:
            lines.append(("Session Affinity", svc.session_affinity))
            if svc.type != "ClusterIP":
                lines.append(("External Traffic Policy", svc.external_traffic_policy))
    elif kind == "deployment":
        d = next((x for x in st.get("deployments", []) if x["name"] == name and in_ns(x, ns)), None)
        dep = desired.deployment(name or "", ns if ns != ALL else (d or {}).get("namespace", "default"))
        if d is None or dep is None:
            fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
        surge, unavailable = dep.max_surge, dep.max_unavailable
        lines += [("Name", dep.name), ("Namespace", dep.namespace)]
        lines += [("Selector", ",".join(f"{k}={v}" for k, v in dep.labels.items()))]
        total = d.get("total", d["updated"])
        lines += [
            (
                "Replicas",
                f"{d['replicas']} desired | {d['updated']} updated | {total} total | {d['available']} available",
            )
        ]
        lines += [
            ("StrategyType", "RollingUpdate"),
            ("RollingUpdateStrategy", f"{unavailable} max unavailable, {surge} max surge"),
        ]
        lines += [
            ("Image", dep.image or f"(lab workload {dep.workload.kind})"),
            ("NewReplicaSet", f"{dep.name}-{d.get('template')}"),
        ]
        for label, probe in (("Readiness", dep.readiness), ("Liveness", dep.liveness)):
            if probe:
                lines.append((label, probe_text(probe)))
    elif kind == "networkpolicy":
        found = netpols.listed(files.read_desired(), None if ns == ALL else ns, name)
        if not found:
            fail(f'Error from server (NotFound): networkpolicies.networking.k8s.io "{name}" not found')
        lines += netpols.describe(found[0], st.get("pods", []))
    else:
        fail(f"error: describe takes pod, service, deployment or networkpolicy, not {kind}")
    width = max(len(k) for k, _ in lines) + 2
    for k, v in lines:
        click.echo(f"{k + ':':<{width}}{v}")


def probe_text(p: spec.Probe) -> str:
    what = {"httpGet": f"http-get http://:{p.port}{p.path}", "tcpSocket": f"tcp-socket :{p.port}"}.get(
        p.kind, f"exec [{' '.join(p.command)}]"
    )
    return (f"{what} delay={p.initial_delay:g}s timeout={p.timeout:g}s period={p.period:g}s "
            f"#success={p.success_threshold} #failure={p.failure_threshold}")  # fmt: skip


@lab.command("logs")
@click.argument("ref", shell_complete=refs("pod"))
@click.option("--tail", type=int, default=-1, help="Lines from the end (-1: all).")
@click.option("-f", "--follow", is_flag=True)
@ns_options
@click.pass_context
def logs(ctx, ref, tail, follow, namespace, all_ns) -> None:
    """logs pod/NAME: what the pod's workload wrote to stdout and stderr."""
    name = ref.split("/", 1)[1] if "/" in ref else ref
    files = files_of(ctx)
    st = files.read_status()
    ns = namespace_of(namespace, all_ns)
    if not any(p["name"] == name and in_ns(p, ns) for p in st.get("pods", [])):
        fail(f'Error from server (NotFound): pods "{name}" not found')
    path = podlogs.path(files.lab, name)
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
            for line in lines[-tail:] if tail >= 0 else lines:
                click.echo(line, nl=False)
            while follow:
                line = f.readline()
                if line:
                    click.echo(line, nl=False)
                else:
                    time.sleep(0.2)
    except FileNotFoundError:
        pass
    except KeyboardInterrupt:
        pass


# -- scale, set image, rollout -------------------------------------------------------------------
def change_deployment(files: LabFiles, name: str, ns: str, fn) -> int:
    def apply_(data: dict) -> None:
        items = data["spec"]["deployments"]
        i = _find(items, name, ns)
        if i is None or items[i].get("bare"):
            fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
        before = dict(items[i])
        fn(items[i], data)
        if not _same_template(before, items[i]):
            if not _revisions(data, f"{ns}/{name}"):
                record_revision(data, before)
            record_revision(data, items[i])

    try:
        return files.change(apply_)
    except spec.SpecError as e:
        fail(f"error: {e}")


def deploy_ref(ref: str) -> str:
    kind, sep, name = ref.partition("/")
    if not sep or KIND_WORDS.get(kind) != "deployment" or not name:
        fail(f"error: {ref!r}: expected deployment/NAME")
    return name


def deployment_args(args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(the Deployment's name, the arguments after it) of `deployment/NAME ...` or, as kubectl
    also takes it, `deployment NAME ...`."""
    if not args:
        fail("error: expected deployment/NAME or deployment NAME")
    if "/" in args[0]:
        return deploy_ref(args[0]), args[1:]
    if KIND_WORDS.get(args[0]) != "deployment" or len(args) < 2:
        fail(f"error: {' '.join(args)!r}: expected deployment/NAME or deployment NAME")
    return args[1], args[2:]


@lab.command("label")
@click.argument("args", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True, help="Change a label that has a value already.")
@click.pass_context
def label(ctx, args, overwrite) -> None:
    """label ns NAME KEY=VALUE ... (KEY- removes): a namespace's labels, for namespaceSelectors."""
    kind, name = kind_and_name(args[:2] if len(args) > 1 and "/" not in args[0] else args[:1])
    changes = args[2:] if len(args) > 1 and "/" not in args[0] else args[1:]
    if kind != "namespace" or name is None or not changes:
        fail("error: a lab labels namespaces: label ns NAME KEY=VALUE ... (KEY- removes)")
    files = files_of(ctx)

    def relabel(data: dict) -> None:
        if name not in (*spec.SYSTEM_NAMESPACES, *data["spec"].get("namespaces", [])):
            fail(f'Error from server (NotFound): namespaces "{name}" not found')
        labels = dict(netpols.namespace_labels(data).get(name, {}))
        for change in changes:
            key, eq, value = change.partition("=")
            if not eq and key.endswith("-"):
                labels.pop(key[:-1], None)
                continue
            if not eq:
                fail(f"error: {change!r}: give KEY=VALUE or KEY-")
            if key in labels and labels[key] != value and not overwrite:
                fail(f"error: '{key}' already has a value ({labels[key]}), and --overwrite is false")
            labels[key] = value
        try:
            labels = spec._labels(labels, "labels")
        except spec.SpecError as e:
            fail(f"error: {e}")
        netpols.set_namespace_labels(data, name, labels)

    files.change(relabel)
    click.echo(f"namespace/{name} labeled")


@lab.command("scale")
@click.argument("args", nargs=-1, required=True, shell_complete=refs("deploy"))
@click.option("--replicas", type=click.IntRange(0, 5000), required=True)
@click.option("-n", "--namespace", default=spec.DEFAULT_NAMESPACE)
@click.pass_context
def scale(ctx, args, replicas, namespace) -> None:
    """scale deployment/NAME --replicas N"""
    name, rest = deployment_args(args)
    if rest:
        fail(f"error: unexpected arguments {' '.join(rest)!r}")
    files = files_of(ctx)
    gen = change_deployment(files, name, namespace, lambda d, _: d.update(replicas=replicas))
    wait_converged(files, gen, f"scale {name}", (f"{namespace}/{name}",))
    click.echo(f"deployment.apps/{name} scaled")


@lab.group("set")
def set_group() -> None:
    """set image deployment/NAME CONTAINER=IMAGE"""


@set_group.command("image")
@click.argument("args", nargs=-1, required=True, shell_complete=refs("deploy"))
@click.option("-n", "--namespace", default=spec.DEFAULT_NAMESPACE)
@click.pass_context
def set_image(ctx, args, namespace) -> None:
    """A new image for a Deployment's container: a rolling update to the workload it stands for."""
    name, images = deployment_args(args)
    if not images:
        fail("error: expected CONTAINER=IMAGE after the deployment")
    files = files_of(ctx.parent)

    def change(d: dict, _data: dict) -> None:
        for pair in images:
            container, sep, image = pair.partition("=")
            if not sep or not image:
                fail(f"error: {pair!r}: expected CONTAINER=IMAGE")
            if container not in (d.get("container") or d["name"], "*"):
                fail(f'error: unable to find container named "{container}"')
            if not d.get("image"):
                fail(f"error: deployment {name} comes from the lab's own dialect; use rollout --version")
            d["image"] = image
            d["version"] = manifests.image_tag(image)

    gen = change_deployment(files, name, namespace, change)
    wait_converged(files, gen, f"set image {name}", (f"{namespace}/{name}",))
    click.echo(f"deployment.apps/{name} image updated")


@lab.command("rollout")
@click.argument(
    "args",
    nargs=-1,
    required=True,
    shell_complete=refs("deploy", extra=lambda _: ["undo", "status", "history", "restart"]),
)
@click.option("--to-revision", type=int, default=0, help="rollout undo: the revision to go back to.")
@click.option("--version", "version", help="The lab dialect's rollout: deploy/NAME --version V.")
@click.option("-n", "--namespace", default=spec.DEFAULT_NAMESPACE)
@click.pass_context
def rollout(ctx, args, to_revision, version, namespace) -> None:
    """rollout status|history|undo|restart deployment/NAME [--to-revision N]"""
    files = files_of(ctx)
    verb = args[0]
    if verb not in ("status", "history", "undo", "restart"):
        if len(args) != 1 or not version:
            fail(
                "usage: podnet lab rollout status|history|undo|restart deploy/NAME, or rollout deploy/NAME --version V"
            )
        name = deploy_ref(args[0])

        def roll(d: dict, data: dict) -> None:
            if d["version"] != version:
                data.setdefault("history", {}).setdefault(name, []).append(d["version"])
                d["version"] = version

        gen = change_deployment(files, name, namespace, roll)
        wait_converged(files, gen, f"rollout {name}", (f"{namespace}/{name}",))
        click.echo(f"deployment.apps/{name} rolled out to {version}")
        return
    name, rest = deployment_args(args[1:])
    if rest:
        fail(f"usage: podnet lab rollout {verb} deployment/NAME")
    key = f"{namespace}/{name}"
    if verb == "restart":
        # as kubectl: a new pod template (its restartedAt annotation), so a rolling update
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        gen = change_deployment(files, name, namespace, lambda d, _: d.update(restartedAt=stamp))
        wait_converged(files, gen, f"restart {name}", (key,))
        click.echo(f"deployment.apps/{name} restarted")
        return
    if verb == "status":
        gen = files.read_desired()["generation"]
        wait_converged(files, gen, f"rollout {name}", (f"{namespace}/{name}",))
        click.echo(f'deployment "{name}" successfully rolled out')
        return
    revs = files.read_desired().get("revisions", {}).get(key, [])
    if verb == "history":
        click.echo(f"deployment.apps/{name}")
        print_table(
            [["REVISION", "CHANGE-CAUSE"]] + [[str(r["revision"]), "<none>"] for r in revs] or [["1", "<none>"]]
        )
        return

    def undo(d: dict, data: dict) -> None:
        revisions = _revisions(data, key)
        if to_revision:
            target = next((r for r in revisions if r["revision"] == to_revision), None)
            if target is None:
                fail(f"error: unable to find specified revision {to_revision} in history")
        elif len(revisions) >= 2:
            target = revisions[-2]
        else:
            old = data.get("history", {}).get(name) or []  # the lab dialect's version history
            if not old:
                fail(f'error: no rollout history found for deployment "{name}"')
            d["version"] = old.pop()
            return
        replicas = d["replicas"]
        d.clear()
        d.update(target["deployment"], replicas=replicas)

    gen = change_deployment(files, name, namespace, undo)
    wait_converged(files, gen, f"rollback {name}", (f"{namespace}/{name}",))
    click.echo(f"deployment.apps/{name} rolled back")
