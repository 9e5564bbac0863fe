"""Executing another plugin (an IPAM plugin) the way the spec says: find it in CNI_PATH,
pass the same environment with the verb set, the whole netconf on stdin.
"""

from __future__ import annotations

import os

from cni.config import plugin_type as check_plugin_type
from cni.errors import CNIError, InvalidConfig, IOFailure

# How deep plugins have delegated to plugins: each execution passes it on one higher, so a
# chain that comes back to a podnet plugin (directly or through another plugin's config)
# ends with an error instead of running for ever
DEPTH = "PODNET_CNI_DELEGATION_DEPTH"
MAX_DEPTH = 3


def find(plugin_type: str, path: tuple[str, ...]) -> str:
    check_plugin_type(plugin_type, "ipam.type")
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):  # a directory is executable too
            return candidate
    raise InvalidConfig(f"ipam.type: plugin {plugin_type!r} not found in CNI_PATH ({':'.join(path) or 'empty'})")


def execute(plugin_type: str, command: str, conf: dict, environ, path: tuple[str, ...]) -> dict | None:
    depth = environ.get(DEPTH, "0")
    depth = int(depth) if depth.isdigit() and len(depth) < 4 else MAX_DEPTH
    if depth >= MAX_DEPTH:
        raise InvalidConfig(f"ipam.type: {plugin_type!r}: plugins delegating to plugins {depth} deep (a loop?)")
    binary = find(plugin_type, path)
    env = dict(environ, CNI_COMMAND=command, **{DEPTH: str(depth + 1)})
    # Imported here: only delegated calls need them, and a plain ADD starts faster without
    import json
    import subprocess

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
