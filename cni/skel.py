"""The plugin skeleton: read the invocation, dispatch to a verb, print result or error JSON.

Like the reference skel package: one handler turns any error into the spec's error JSON on
stdout with a non-zero exit; a typed CNIError keeps its code, anything else becomes 999.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from cni import jsonio, version
from cni.config import Invocation, decode, parse_invocation
from cni.errors import CNIError
from ipam.value import Value

TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final


class Call(Value):
    """One invocation: the environment's part and the decoded config from stdin. (A plain
    class, as every value type on the ADD path: see cni/netlink.py's Link.)"""

    __slots__ = ("inv", "conf", "environ")

    def __init__(self, inv: Invocation, conf: dict, environ: dict) -> None:
        self.inv: Final = inv
        self.conf: Final = conf
        self.environ: Final = environ  # the caller's whole environment, passed on to delegated plugins


Handler = Callable[[Call], dict | None]


def run(handlers: dict[str, Handler], environ=None, stdin=None, stdout=None) -> int:
    environ = os.environ if environ is None else environ
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    reply_version = version.CURRENT
    try:
        inv = parse_invocation(environ)
        if inv.command == "VERSION":
            _write(stdout, version.info())
            return 0
        conf = decode(stdin.read())
        if isinstance(conf.get("cniVersion"), str) and conf["cniVersion"] in version.SUPPORTED:
            reply_version = conf["cniVersion"]
        result = handlers[inv.command](Call(inv, conf, dict(environ)))
        if result is not None:
            _write(stdout, result)
        return 0
    except CNIError as e:
        _write(stdout, e.to_json(reply_version))
    except Exception as e:  # the one place untyped failures become CNI's generic code
        _write(stdout, CNIError(f"internal error: {type(e).__name__}: {e}").to_json(reply_version))
    return 1


def _write(stdout, obj: dict) -> None:
    stdout.write(jsonio.dumps(obj) + "\n")
    stdout.flush()
