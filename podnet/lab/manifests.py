"""Kubernetes manifests -> the lab's desired state, and the lab's objects -> Kubernetes objects.

`podnet lab apply|create|delete -f` take what kubectl takes: YAML or JSON, several documents
in a file, `List`s, a directory of files; of them `v1 Namespace`, `apps/v1 Deployment`,
`v1 Service` and `networking.k8s.io/v1 NetworkPolicy` (each node's agent enforces it). A lab
pod runs a workload, not a container image; the image picks it (the table is in the README):

  agnhost `netexec` / `serve-hostname` -> the HTTP workload, on the subcommand's port
  `command:` given                     -> that command (args appended), in the pod; started
                                          when its containerPort answers (none: when it runs)
  image name contains `coredns`        -> the lab's cluster DNS server (dns.py), port 53
  image name contains `redis`          -> the shared counter (HTTP; /incr counts), port 6379
  anything else                        -> the HTTP workload that says which pod served;
                                          its version is the image tag ("latest" without one);
                                          its port the image's own (images.py: nginx 80),
                                          else the first containerPort, else 8080

The http workload counts visits in the Service its `BACKEND` environment variable names
(`redis`, `redis.other-ns` or `redis:6379`), found through cluster DNS as any pod would.

A field podnet cannot honour is refused with its path (`spec.template.spec.volumes: not
supported in a lab`), never dropped; fields that change nothing a lab shows (annotations,
resources, imagePullPolicy, ...) are accepted and ignored. Everything here is pure.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from podnet.lab import images
from podnet.lab import spec as specmod
from podnet.lab.spec import Deployment, LabSpec, Probe, Service, ServicePort, SpecError, Workload

MAX_OBJECTS = specmod.MAX_DEPLOYMENTS + specmod.MAX_SERVICES
DEFAULT_SURGE = "25%"  # kube's RollingUpdate defaults
DEFAULT_UNAVAILABLE = "25%"
SUFFIXES = (".yaml", ".yml", ".json")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # the one pod-template annotation that changes pods

# accepted and ignored: they change nothing a lab can show
COSMETIC_META = {"labels", "annotations", "uid", "resourceVersion", "generation", "creationTimestamp"}
COSMETIC_META |= {"managedFields", "selfLink", "finalizers", "ownerReferences", "generateName"}
COSMETIC_CONTAINER = {"imagePullPolicy", "resources", "terminationMessagePath", "terminationMessagePolicy"}
COSMETIC_CONTAINER |= {"workingDir", "stdin", "tty", "securityContext"}
COSMETIC_POD = {"terminationGracePeriodSeconds", "restartPolicy", "dnsPolicy", "schedulerName"}
COSMETIC_POD |= {"securityContext", "serviceAccountName", "serviceAccount", "automountServiceAccountToken"}
COSMETIC_POD |= {"enableServiceLinks", "imagePullSecrets", "priority", "priorityClassName"}
COSMETIC_DEPLOY = {"minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "paused"}
COSMETIC_SERVICE = {"ipFamilies", "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "internalTrafficPolicy"}
COSMETIC_SERVICE |= {"sessionAffinityConfig", "clusterIPs", "publishNotReadyAddresses"}

Object = tuple[str, Any]  # ("Namespace", name) | ("Deployment", Deployment) | ("Service", Service)
#                          | ("NetworkPolicy", the object as stored)
#                          | ("NamespaceLabels", (name, labels)): after each Namespace


def _map(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _refuse(data: dict, allowed: set[str], where: str) -> None:
    """A field outside `allowed` is one the lab would have to drop: refuse it by its path."""
    for key in data:
        if key not in allowed:
            raise SpecError(f"{where}.{key}: not supported in a lab" if where else f"{key}: not supported in a lab")


def _meta(obj: dict, where: str, namespaced: bool) -> tuple[str, str]:
    meta = _map(obj.get("metadata"), f"{where}metadata")
    _refuse(meta, COSMETIC_META | {"name", "namespace"}, f"{where}metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not specmod.NAME.fullmatch(name) or len(name) > 40:
        raise SpecError(f"{where}metadata.name: {name!r} is not a valid name (lowercase letters, digits and '-')")
    if not namespaced:
        if "namespace" in meta:
            raise SpecError(f"{where}metadata.namespace: a Namespace is not in a namespace")
        return "", name
    namespace = meta.get("namespace")
    return (specmod._namespace(namespace, f"{where}metadata.namespace") if namespace else ""), name


# -- images -> workloads ---------------------------------------------------------------------
def image_tag(image: str) -> str:
    """The tag of an image reference (`gcr.io/x/frontend:v2` -> v2; none -> latest)."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else "latest"


def workload_of(container: dict, where: str) -> tuple[Workload, str]:
    """(the workload a container's image stands for, its version) by the table above."""
    image = container["image"]
    name = images.image_name(image)
    ports = _container_ports(container, where)
    env = _env(container, where)
    first = ports[0][1] if ports else None
    command = [*_strings(container.get("command"), f"{where}.command")]
    command += _strings(container.get("args"), f"{where}.args")
    agnhost_port = images.agnhost_http_port(name, command)
    if agnhost_port is None and container.get("args") is not None and container.get("command") is None:
        raise SpecError(f"{where}.args: only with command: a lab has no image entrypoint to pass them to")
    version = image_tag(image)
    if not specmod.LABEL_VALUE.fullmatch(version) or len(version) > 63:
        raise SpecError(f"{where}.image: tag {version[:80]!r} cannot be a version label")
    env_t = tuple(sorted(env.items()))
    if agnhost_port is not None:
        return Workload(kind="http", port=agnhost_port, env=env_t), version
    if command:  # no containerPort: nothing to wait for but the process (port 0)
        return Workload(kind="command", port=first or 0, command=tuple(command), env=env_t), version
    if "coredns" in name:
        return Workload(kind="dns", port=53, env=env_t), version
    if "redis" in name:
        return Workload(kind="counter", port=first or 6379, env=env_t), version
    backend = env.get("BACKEND")
    if backend is not None and not specmod.HOST.fullmatch(backend):
        raise SpecError(f"{where}.env.BACKEND: {backend!r} is not a Service name (NAME, NAME.NAMESPACE, NAME:PORT)")
    port = images.listen_port(name) or first or 8080
    return Workload(kind="http", port=port, backend=backend, env=env_t), version


def _strings(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    if not all(isinstance(x, str) for x in items):
        raise SpecError(f"{where}: expected a list of strings")
    return items


def _container_ports(container: dict, where: str) -> list[tuple[str, int]]:
    out = []
    for i, p in enumerate(_list(container.get("ports"), f"{where}.ports")):
        pw = f"{where}.ports[{i}]"
        p = _map(p, pw)
        _refuse(p, {"containerPort", "name", "protocol"}, pw)
        port = specmod._int(p.get("containerPort"), f"{pw}.containerPort", 1, 65535)
        if p.get("protocol", "TCP") not in specmod.PROTOCOLS:
            raise SpecError(f"{pw}.protocol: {p.get('protocol')!r} is not one of TCP, UDP")
        name = p.get("name", "")
        if name and (not isinstance(name, str) or not specmod.NAME.fullmatch(name) or len(name) > 15):
            raise SpecError(f"{pw}.name: {str(name)[:80]!r} is not a valid port name")
        out.append((name, port))
    return out


def _env(container: dict, where: str) -> dict[str, str]:
    out = {}
    for i, e in enumerate(_list(container.get("env"), f"{where}.env")):
        ew = f"{where}.env[{i}]"
        e = _map(e, ew)
        _refuse(e, {"name", "value"}, ew)
        name, value = e.get("name"), e.get("value", "")
        if not isinstance(name, str) or not name or len(name) > 256 or "=" in name or "\0" in name:
            raise SpecError(f"{ew}.name: {str(name)[:80]!r} is not an environment variable name")
        if not isinstance(value, str) or "\0" in value:
            raise SpecError(f"{ew}.value: expected a string")
        out[name] = value
    return out


def parse_probe(data: Any, where: str, ports: list[tuple[str, int]]) -> Probe | None:
    if data is None:
        return None
    data = _map(data, where)
    timing = {"initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"}
    _refuse(data, timing | {"httpGet", "tcpSocket", "exec"}, where)
    handlers = [k for k in ("httpGet", "tcpSocket", "exec") if k in data]
    if len(handlers) != 1:
        raise SpecError(f"{where}: a probe needs exactly one of httpGet, tcpSocket, exec")
    kind = handlers[0]
    h = _map(data[kind], f"{where}.{kind}")
    out: dict[str, Any] = {"kind": kind, **{k: data[k] for k in timing if k in data}}
    if kind == "exec":
        _refuse(h, {"command"}, f"{where}.exec")
        out["command"] = _strings(h.get("command"), f"{where}.exec.command")
    else:
        _refuse(h, {"port", "path", "scheme", "httpHeaders"} if kind == "httpGet" else {"port"}, f"{where}.{kind}")
        if h.get("scheme", "HTTP") != "HTTP":
            raise SpecError(f"{where}.httpGet.scheme: lab workloads speak HTTP only")
        if h.get("httpHeaders"):
            raise SpecError(f"{where}.httpGet.httpHeaders: not supported in a lab")
        port = h.get("port")
        if isinstance(port, str):
            named = dict(ports)
            if port not in named:
                raise SpecError(f"{where}.{kind}.port: no container port is named {port!r}")
            port = named[port]
        out["port"] = port
        if kind == "httpGet":
            out["path"] = h.get("path", "/")
    return specmod.parse_probe(out, where)


# -- objects ---------------------------------------------------------------------------------
def parse_namespace(obj: dict, where: str) -> str:
    _refuse(obj, {"apiVersion", "kind", "metadata", "spec", "status"}, where.rstrip("."))
    return _meta(obj, where, namespaced=False)[1]


def parse_deployment(obj: dict, where: str, namespace: str | None = None) -> Deployment:
    _refuse(obj, {"apiVersion", "kind", "metadata", "spec", "status"}, where.rstrip("."))
    ns, name = _meta(obj, where, namespaced=True)
    spec = _map(obj.get("spec"), f"{where}spec")
    _refuse(spec, COSMETIC_DEPLOY | {"replicas", "selector", "template", "strategy"}, f"{where}spec")
    selector = _map(spec.get("selector"), f"{where}spec.selector")
    _refuse(selector, {"matchLabels"}, f"{where}spec.selector")
    match = specmod._labels(selector.get("matchLabels"), f"{where}spec.selector.matchLabels")
    if not match:
        raise SpecError(f"{where}spec.selector: a Deployment needs spec.selector.matchLabels")
    template = _map(spec.get("template"), f"{where}spec.template")
    _refuse(template, {"metadata", "spec"}, f"{where}spec.template")
    tmeta = _map(template.get("metadata"), f"{where}spec.template.metadata")
    _refuse(tmeta, {"labels", "annotations", "name", "creationTimestamp"}, f"{where}spec.template.metadata")
    labels = specmod._labels(tmeta.get("labels"), f"{where}spec.template.metadata.labels")
    if any(labels.get(k) != v for k, v in match.items()):
        # as the API server insists: the Deployment must select the pods it makes
        raise SpecError(f"{where}spec.template.metadata.labels: `selector` does not match template `labels`")
    pod = _pod_spec(template.get("spec"), f"{where}spec.template.spec")
    surge, unavailable = _strategy(spec.get("strategy"), f"{where}spec.strategy")
    restarted_at = specmod._restarted_at(
        _map(tmeta.get("annotations"), f"{where}spec.template.metadata.annotations").get(RESTARTED_AT, ""),
        f"{where}spec.template.metadata.annotations.{RESTARTED_AT}",
    )
    return Deployment(
        name=name,
        replicas=specmod._int(spec.get("replicas", 1), f"{where}spec.replicas", 0, 5000),
        labels=labels,
        namespace=ns or namespace or specmod.DEFAULT_NAMESPACE,
        max_surge=surge,
        max_unavailable=unavailable,
        restarted_at=restarted_at,
        **pod,
    )


def parse_pod(obj: dict, where: str, namespace: str | None = None) -> Deployment:
    """A bare Pod: one pod named as the object, restarted in place, never replaced by another
    (deleting it deletes it). The lab keeps it beside the Deployments, as one of replicas 1."""
    _refuse(obj, {"apiVersion", "kind", "metadata", "spec", "status"}, where.rstrip("."))
    ns, name = _meta(obj, where, namespaced=True)
    labels = specmod._labels(_map(obj.get("metadata"), f"{where}metadata").get("labels"), f"{where}metadata.labels")
    pod = _pod_spec(obj.get("spec"), f"{where}spec")
    namespace = ns or namespace or specmod.DEFAULT_NAMESPACE
    return Deployment(name=name, replicas=1, labels=labels, namespace=namespace, bare=True, **pod)


def _pod_spec(value: Any, where: str) -> dict[str, Any]:
    """A pod spec's one container -> the Deployment fields it decides (workload, image, probes)."""
    pspec = _map(value, where)
    _refuse(pspec, COSMETIC_POD | {"containers"}, where)
    if pspec.get("restartPolicy", "Always") != "Always":
        raise SpecError(f"{where}.restartPolicy: a lab restarts a pod's workload Always")
    containers = _list(pspec.get("containers"), f"{where}.containers")
    if len(containers) != 1:
        raise SpecError(f"{where}.containers: a lab pod runs exactly one container")
    cw = f"{where}.containers[0]"
    c = _map(containers[0], cw)
    _refuse(c, COSMETIC_CONTAINER | {"name", "image", "ports", "env", "command", "args"}
            | {"readinessProbe", "livenessProbe"}, cw)  # fmt: skip
    image = c.get("image")
    if not isinstance(image, str) or not image or len(image) > 512 or not image.isprintable() or " " in image:
        raise SpecError(f"{cw}.image: {image!r} is not an image reference")
    cname = c.get("name")
    if not isinstance(cname, str) or not specmod.NAME.fullmatch(cname) or len(cname) > 63:
        raise SpecError(f"{cw}.name: {cname!r} is not a valid container name")
    workload, version = workload_of(c, cw)
    ports = _container_ports(c, cw)
    named = tuple((n, p) for n, p in ports if n)
    return {
        "version": version,
        "workload": replace(workload, named_ports=named),
        "image": image,
        "container": cname,
        "readiness": parse_probe(c.get("readinessProbe"), f"{cw}.readinessProbe", ports),
        "liveness": parse_probe(c.get("livenessProbe"), f"{cw}.livenessProbe", ports),
    }


def _strategy(value: Any, where: str) -> tuple[int | str, int | str]:
    """(maxSurge, maxUnavailable) of a Deployment's strategy; Recreate is (0, 100%)."""
    strategy = _map(value, where)
    _refuse(strategy, {"type", "rollingUpdate"}, where)
    stype = strategy.get("type", "RollingUpdate")
    if stype == "Recreate":
        if "rollingUpdate" in strategy:
            raise SpecError(f"{where}.rollingUpdate: may not be given with type Recreate")
        return 0, "100%"
    if stype != "RollingUpdate":
        raise SpecError(f"{where}.type: {stype!r} is not one of RollingUpdate, Recreate")
    ru = _map(strategy.get("rollingUpdate"), f"{where}.rollingUpdate")
    _refuse(ru, {"maxSurge", "maxUnavailable"}, f"{where}.rollingUpdate")
    surge = specmod._surge(ru.get("maxSurge", DEFAULT_SURGE), f"{where}.rollingUpdate.maxSurge")
    unavailable = specmod._surge(ru.get("maxUnavailable", DEFAULT_UNAVAILABLE), f"{where}.rollingUpdate.maxUnavailable")
    if surge in (0, "0%") and unavailable in (0, "0%"):
        raise SpecError(f"{where}.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0")
    return surge, unavailable


def parse_service(obj: dict, where: str, namespace: str | None = None) -> Service:
    _refuse(obj, {"apiVersion", "kind", "metadata", "spec", "status"}, where.rstrip("."))
    ns, name = _meta(obj, where, namespaced=True)
    spec = _map(obj.get("spec"), f"{where}spec")
    _refuse(spec, COSMETIC_SERVICE | {"type", "selector", "ports", "clusterIP", "sessionAffinity"}
            | {"externalTrafficPolicy"}, f"{where}spec")  # fmt: skip
    if spec.get("internalTrafficPolicy", "Cluster") != "Cluster":
        raise SpecError(f"{where}spec.internalTrafficPolicy: only Cluster is supported in a lab")
    if spec.get("ipFamilies", ["IPv4"]) != ["IPv4"]:
        raise SpecError(f"{where}spec.ipFamilies: lab Services are IPv4 only")
    stype = spec.get("type", "ClusterIP")
    if stype == "ExternalName":
        raise SpecError(f"{where}spec.type: ExternalName is not supported in a lab")
    ports = []
    for i, p in enumerate(_list(spec.get("ports"), f"{where}spec.ports")):
        pw = f"{where}spec.ports[{i}]"
        p = _map(p, pw)
        _refuse(p, {"name", "port", "targetPort", "nodePort", "protocol", "appProtocol"}, pw)
        ports.append({k: v for k, v in p.items() if k != "appProtocol"})
    body = {"name": name, "type": stype, "selector": spec.get("selector"), "ports": ports}
    for key in ("clusterIP", "sessionAffinity", "externalTrafficPolicy"):
        if spec.get(key) is not None:
            body[key] = spec[key]
    svc = specmod.parse_service(body, f"{where}spec")
    return replace(svc, namespace=ns or namespace or specmod.DEFAULT_NAMESPACE)


KINDS = {("v1", "Namespace"), ("apps/v1", "Deployment"), ("v1", "Pod"), ("v1", "Service")}
KINDS |= {("networking.k8s.io/v1", "NetworkPolicy")}


def parse_network_policy(obj: dict, where: str, namespace: str | None = None) -> dict:
    """A NetworkPolicy as the API server stores it (validated as it validates: a bad field is
    refused by its path; namespace filled in). Kept as the object: the agents read it so."""
    from policy.spec import PolicyError
    from policy.spec import parse as parse_policy

    obj = _map(obj, where)
    meta = _map(obj.get("metadata"), f"{where}metadata")
    ns = meta.get("namespace") or namespace or specmod.DEFAULT_NAMESPACE
    if namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise SpecError(f"{where}metadata.namespace: {meta['namespace']!r} does not match the namespace from -n "
                        f"({namespace!r})")  # fmt: skip
    kept = {k: v for k, v in meta.items() if k in ("name", "labels", "annotations")}
    stored = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": {**kept, "namespace": ns},
              "spec": obj.get("spec") or {}}  # fmt: skip
    try:
        parse_policy({**obj, "metadata": {**meta, "namespace": ns}})
    except PolicyError as e:
        raise SpecError(f"{where}{e}") from None
    return stored


def parse_objects(docs: list, where: str, namespace: str | None = None) -> list[Object]:
    """Documents (each an object or a `List`) -> objects, in order. `namespace` (from -n) is
    where objects without metadata.namespace go; one that names another is refused, as kubectl."""
    out: list[Object] = []
    flat: list[tuple[str, Any]] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        w = f"{where}[{i}]"
        doc = _map(doc, w)
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            flat += [(f"{w}.items[{j}]", item) for j, item in enumerate(_list(doc.get("items"), f"{w}.items"))]
        else:
            flat.append((w, doc))
    if len(flat) > MAX_OBJECTS:
        raise SpecError(f"{where}: {len(flat)} objects, more than the limit of {MAX_OBJECTS}")
    for w, obj in flat:
        obj = _map(obj, w)
        if "apiVersion" not in obj and obj.get("kind") in ("Deployment", "Service"):
            # the lab's own dialect (netns-labs/canary.yaml): flat fields, no apiVersion
            lab_parse = specmod.parse_deployment if obj["kind"] == "Deployment" else specmod.parse_service
            out.append((obj["kind"], lab_parse(obj, w)))
            continue
        key = (obj.get("apiVersion"), obj.get("kind"))
        label = f"{w} ({key[1]} {_map(obj.get('metadata'), w).get('name')}): "
        if key not in KINDS:
            known = ", ".join(f"{a} {k}" for a, k in sorted(KINDS))
            raise SpecError(f"{w}: {key[0]} {key[1]} is not supported in a lab (it takes {known})")
        if key[1] == "Namespace":
            out.append(("Namespace", parse_namespace(obj, label)))
            labels = specmod._labels(_map(obj.get("metadata"), label).get("labels"), f"{label}metadata.labels")
            out.append(("NamespaceLabels", (out[-1][1], labels)))  # what namespaceSelectors match
            continue
        if key[1] == "NetworkPolicy":
            out.append(("NetworkPolicy", parse_network_policy(obj, label, namespace)))
            continue
        o: Deployment | Service
        if key[1] == "Service":
            o = parse_service(obj, label, namespace)
        else:
            o = (parse_pod if key[1] == "Pod" else parse_deployment)(obj, label, namespace)
        if namespace and o.namespace != namespace:
            raise SpecError(
                f"{label}metadata.namespace: {o.namespace!r} does not match the namespace from -n ({namespace!r})"
            )
        out.append((key[1], o))
    return out


def files_of(path: str) -> list[str]:
    """A file, or the manifests of a directory (.yaml, .yml, .json; sorted, as kubectl reads them)."""
    if os.path.isdir(path):
        return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(SUFFIXES)]
    return [path]


def load(path: str, namespace: str | None = None) -> list[Object]:
    objs: list[Object] = []
    for f in files_of(path):
        docs = specmod._documents(f)
        objs += parse_objects(docs, os.path.basename(f), namespace)
    return objs


def merge(spec: LabSpec, objs: list[Object]) -> LabSpec:
    """The lab's desired state with these objects created or replaced (not checked)."""
    for kind, o in objs:
        if kind == "NamespaceLabels":
            continue  # kept beside the topology by `lab apply` (netpols.py), not part of it
        if kind == "Namespace":
            spec = replace(spec, namespaces=tuple(dict.fromkeys((*spec.namespaces, o))))
        elif kind == "Deployment":
            spec = spec.with_deployment(o)
        elif kind == "NetworkPolicy":  # not part of a topology: the lab keeps them beside it
            raise SpecError(f"NetworkPolicy {o['metadata']['name']}: apply it with `podnet lab apply -f`")
        else:
            spec = replace(spec, services=(*(s for s in spec.services if s.key != o.key), o))
    return spec


# -- lab objects -> Kubernetes objects (`get -o json|yaml`) ----------------------------------
def target_port(svc: Service, port: ServicePort, spec: LabSpec) -> int:
    """A Service port's target as a number: a name is looked up in the container ports of the
    Deployments the Service selects (the first that has it), as the endpoints controller does
    per pod."""
    if isinstance(port.target_port, int):
        return port.target_port
    for d in spec.deployments:
        if d.namespace == svc.namespace and all(d.labels.get(k) == v for k, v in svc.selector.items()):
            named = dict(d.workload.named_ports)
            if port.target_port in named:
                return named[port.target_port]
    return 0  # no pod has that port: the endpoints have none either


def probe_object(p: Probe) -> dict:
    handler: dict[str, Any]
    if p.kind == "exec":
        handler = {"exec": {"command": list(p.command)}}
    elif p.kind == "tcpSocket":
        handler = {"tcpSocket": {"port": p.port}}
    else:
        handler = {"httpGet": {"path": p.path, "port": p.port, "scheme": "HTTP"}}
    return {
        **handler,
        "initialDelaySeconds": int(p.initial_delay),
        "periodSeconds": int(p.period),
        "timeoutSeconds": int(p.timeout),
        "successThreshold": p.success_threshold,
        "failureThreshold": p.failure_threshold,
    }


def container_object(d: Deployment) -> dict:
    w = d.workload
    c: dict[str, Any] = {"name": d.container or d.name, "image": d.image or f"podnet-lab/{w.kind}:{d.version}"}
    if w.kind == "command":
        c["command"] = list(w.command)
    named = {p: n for n, p in w.named_ports}
    c["ports"] = [{"containerPort": w.port, "protocol": "UDP" if w.kind == "dns" else "TCP"}] if w.port else []
    if w.port in named:
        c["ports"][0]["name"] = named[w.port]
    c["ports"] += [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in w.named_ports if p != w.port]
    if w.env:
        c["env"] = [{"name": k, "value": v} for k, v in w.env]
    if d.readiness:
        c["readinessProbe"] = probe_object(d.readiness)
    if d.liveness:
        c["livenessProbe"] = probe_object(d.liveness)
    return c


def template_metadata(d: Deployment) -> dict:
    meta: dict[str, Any] = {"labels": dict(d.labels)}
    if d.restarted_at:
        meta["annotations"] = {RESTARTED_AT: d.restarted_at}
    return meta


def deployment_object(d: Deployment, status: dict | None = None, revision: int = 1) -> dict:
    surge, unavailable = d.max_surge, d.max_unavailable
    recreate = surge == 0 and unavailable == "100%"
    strategy: dict[str, Any] = (
        {"type": "Recreate"}
        if recreate
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    )
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": d.name,
            "namespace": d.namespace,
            "labels": dict(d.labels),
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": dict(d.labels)},
            "strategy": strategy,
            "template": {"metadata": template_metadata(d), "spec": {"containers": [container_object(d)]}},
        },
    }
    if status:
        obj["status"] = {
            "replicas": status.get("total", status["updated"]),
            "updatedReplicas": status["updated"],
            "readyReplicas": status["ready"],
            "availableReplicas": status["available"],
            "observedGeneration": status.get("generation", 1),
        }
    return obj


def service_object(svc: Service, spec: LabSpec, cluster_ip: str | None, node_ports: dict, lb_ip: str | None) -> dict:
    ports = []
    for p in svc.ports:
        port: dict[str, Any] = {"port": p.port, "targetPort": p.target_port, "protocol": p.protocol}
        if p.name:
            port["name"] = p.name
        if svc.type != "ClusterIP" and node_ports.get(p.port):
            port["nodePort"] = node_ports[p.port]
        ports.append(port)
    s: dict[str, Any] = {"type": svc.type, "selector": dict(svc.selector), "ports": ports}
    ip = "None" if svc.headless else cluster_ip
    s.update(clusterIP=ip, clusterIPs=[ip] if ip else [], sessionAffinity=svc.session_affinity)
    s.update(ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack", internalTrafficPolicy="Cluster")
    if svc.type != "ClusterIP":
        s["externalTrafficPolicy"] = svc.external_traffic_policy
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": svc.namespace},
        "spec": s,
        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip, "ipMode": "VIP"}]} if lb_ip else {}},
    }


def namespace_object(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}
