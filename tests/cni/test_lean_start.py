"""The standalone plugin's start: a runtime pays for every module the ADD path imports, at
every pod. These keep the heavy ones off that path (python -X importtime shows the costs)."""

from __future__ import annotations

import json
import subprocess
import sys

from cni import install

# Each costs the start several milliseconds and is needed only off the ADD path (etcd
# stores, ipMasq, delegated IPAM) or not at all.
HEAVY = ("typing", "subprocess", "shutil", "socket", "selectors", "signal", "http.client", "ssl", "email")

PROBE = """
import dataclasses, json, sys
sys.path.append({root!r})
from cni.shim import handlers
import cni.skel
handlers({plugin!r})
undocumented = [
    f"{{m.__name__}}.{{c.__name__}}"
    for m in list(sys.modules.values()) if m and m.__name__.split(".")[0] in ("cni", "ipam")
    for c in vars(m).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == m.__name__
    and c.__doc__.startswith(c.__name__ + "(")
]
print(json.dumps({{"modules": sorted(sys.modules), "undocumented": undocumented}}))
"""


def probe(plugin: str) -> dict:
    code = PROBE.format(root=install.package_root(), plugin=plugin)
    # -I -S as the launchers start the interpreter.
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_the_add_path_imports_no_heavy_module():
    for plugin in ("podnet-cni", "podnet-ipam"):
        loaded = probe(plugin)["modules"]
        assert [m for m in HEAVY if m in loaded] == [], plugin


def test_dataclasses_on_the_add_path_have_docstrings():
    # Without one, @dataclass builds a docstring from inspect.signature at import time,
    # which is a good part of the cost of defining the class.
    assert probe("podnet-cni")["undocumented"] == []
