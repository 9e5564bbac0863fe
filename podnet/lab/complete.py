"""Shell completion of `pod/NAME`, `svc/NAME`, `node/NAME`, `deploy/NAME` from the running lab.

Enable it with `eval "$(_PODNET_COMPLETE=bash_source podnet)"` (zsh_source, fish_source for
those shells). Completion runs on every Tab: it reads the lab's status.json and nothing else,
and never fails loudly (a shell prints whatever a completer writes)."""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem

from podnet.lab import names
from podnet.lab.state import LabFiles

# the kind a reference starts with -> the list in status.json that holds its names
KINDS = {"pod": "pods", "svc": "services", "node": "nodes", "deploy": "deployments"}

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _lab(ctx: click.Context) -> str | None:
    """--lab wherever it was given (on the verb or on `podnet lab`), else $PODNET_LAB, else
    the only lab that is up."""
    c: click.Context | None = ctx
    while c is not None:
        if c.params.get("lab_name"):
            return c.params["lab_name"]
        c = c.parent
    if os.environ.get("PODNET_LAB"):
        return os.environ["PODNET_LAB"]
    up = [lab for lab in names.labs_present() if LabFiles(lab).exists()]
    return up[0] if len(up) == 1 else None


def _status(ctx: click.Context) -> dict:
    try:
        lab = _lab(ctx)
        return LabFiles(lab).read_status() if lab else {}
    except Exception:  # a half-written or missing lab completes nothing
        return {}


def references(st: dict, kinds: tuple[str, ...], ports: bool = False) -> list[str]:
    """Every `kind/NAME` of the lab; with ports, a Service also as `svc/NAME:PORT`."""
    out = []
    for kind in kinds:
        for item in st.get(KINDS[kind], []):
            out.append(f"{kind}/{item['name']}")
            if ports and kind == "svc":
                out += [f"svc/{item['name']}:{p['port']}" for p in item.get("ports", [])]
    return out


def refs(*kinds: str, ports: bool = False, extra: Callable[[dict], list[str]] | None = None) -> Completer:
    """A shell_complete function for an argument or option that takes `kind/NAME`."""

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        st = _status(ctx)
        words = references(st, kinds, ports) + (extra(st) if extra else [])
        return [CompletionItem(w) for w in words if w.startswith(incomplete)]

    return complete


def node_ports(st: dict) -> list[str]:
    """NODE:NODEPORT for every node and NodePort (what `lab curl` takes besides refs)."""
    ports = [p["nodePort"] for s in st.get("services", []) for p in s.get("ports", []) if p.get("nodePort")]
    return [f"{n['name']}:{port}" for n in st.get("nodes", []) for port in ports]


def words(*choices: str) -> Completer:
    def complete(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(c) for c in choices if c.startswith(incomplete)]

    return complete
