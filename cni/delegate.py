"""Executing another plugin (an IPAM plugin) the way the spec says: find it in CNI_PATH,
pass the same environment with the verb set, the whole netconf on stdin.
"""

from __future__ import annotations

import json
import os

from cni.errors import CNIError, InvalidConfig, IOFailure


def find(plugin_type: str, path: tuple[str, ...]) -> str:
    if "/" in plugin_type:
        raise InvalidConfig(f"ipam.type: {plugin_type!r} must be a plugin name, not a path")
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.access(candidate, os.X_OK):
            return candidate
    raise InvalidConfig(f"ipam.type: plugin {plugin_type!r} not found in CNI_PATH ({':'.join(path) or 'empty'})")


def execute(plugin_type: str, command: str, conf: dict, environ, path: tuple[str, ...]) -> dict | None:
    binary = find(plugin_type, path)
    env = dict(environ, CNI_COMMAND=command)
    import subprocess  # only ipMasq/delegated calls need it; a plain ADD starts faster without

    proc = subprocess.run([binary], input=json.dumps(conf).encode(), env=env, capture_output=True)
    out = proc.stdout.strip()
    try:
        reply = json.loads(out) if out else None
    except ValueError:
        raise IOFailure(f"ipam plugin {plugin_type}: unreadable output: {out[:200]!r}") from None
    if proc.returncode != 0:
        if isinstance(reply, dict) and "code" in reply:
            err = CNIError(f"ipam plugin {plugin_type}: {reply.get('msg', '')}", reply.get("details", ""))
            err.code = int(reply["code"])
            raise err
        raise IOFailure(f"ipam plugin {plugin_type} failed: {proc.stderr.decode(errors='replace')[:200]}")
    return reply
