"""The standalone plugin's start: a runtime pays for every module the ADD path imports, at
every pod. These keep the heavy ones off that path (python -X importtime shows the costs)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from cni import install, jsonio, masq, veth

# Each costs the start several milliseconds and is needed only off the ADD path (etcd
# stores, ipMasq, delegated IPAM) or not at all. dataclasses imports inspect (and that ast,
# dis, tokenize): the ADD path's value types are plain classes (ipam.value.Value) instead;
# hashlib loads OpenSSL: names are hashed with the interpreter's own sha256; json compiles
# regular expressions (re, and enum): stdin and stdout go through cni.jsonio; the ctypes
# package builds dozens of types: netns calls setns through _ctypes itself.
HEAVY = (
    "typing",
    "subprocess",
    "shutil",
    "socket",
    "selectors",
    "signal",
    "http.client",
    "ssl",
    "email",
    "dataclasses",
    "inspect",
    "hashlib",
    "json",
    "re",
    "enum",
    "ctypes",
)

# The modules are listed before anything else is imported, json only to print them.
PROBE = """
import sys
sys.path.append({root!r})
from cni.shim import handlers
import cni.skel
handlers({plugin!r})
loaded = sorted(sys.modules)
import hashlib
import json
print(json.dumps({{"modules": loaded}}))
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


def test_names_keep_their_digest():
    # veth and masq hash with the interpreter's own sha256 module, not hashlib's OpenSSL:
    # the names of links and chains already on nodes must not change.
    assert veth.host_name("abc", "eth0") == "pn" + hashlib.sha256(b"abc/eth0").hexdigest()[:12] == "pn538f587a2365"
    assert masq.chain_name("n", "abc", "eth0") == "PODNET-MASQ-34B3C7FAAA9D"


def test_jsonio_is_json():
    inputs = [b'{"a": [1.5, true, null, "\\u00e9"], "b": {}}', b" [1] \n", b"\xef\xbb\xbf{}", b"{} x", b"", b"[1,]"]
    for data in inputs:
        try:
            want: object = json.loads(data)
        except ValueError as e:
            want = str(e)
        try:
            got: object = jsonio.loads(data)
        except ValueError as e:
            got = str(e)
        assert got == want, data
    for obj in ({"a": [1, 2.5, None, True, "\u00e9\n"]}, {1: 2}):
        assert jsonio.dumps(obj) == json.dumps(obj)
