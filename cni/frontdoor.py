"""Build and install the compiled CNI front door (cni/frontdoor.c) as podnet-cni and podnet-ipam.

Why compiled: the runtime starts the plugin once per pod, and an interpreter's start costs
more than the warm server's whole answer. The C program speaks cni/shim.py's protocol to
the server and, when none listens, executes the Python launcher installed beside it as
`<name>-python`. It is built here from the source shipped in the package, with the
node's own C compiler, so it matches the node's libc; with no compiler, the Python
launchers are installed under the plugin names instead, as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources

from cni import install

FALLBACK_SUFFIX = "-python"  # must match FALLBACK_SUFFIX in frontdoor.c
CFLAGS = ("-Wall", "-Wextra", "-O2")


class BuildError(Exception):
    """The compiler ran and failed; the message carries its output."""


@dataclass(frozen=True)
class Installed:
    compiled: bool
    paths: tuple[str, ...]
    note: str  # what a person installing should know (which kind, and why)


def find_compiler() -> str | None:
    """$CC if set, else the system's cc or gcc."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"].split()[0]) and os.environ["CC"]
    return shutil.which("cc") or shutil.which("gcc")


def build(out: str, plugin: str, compiler: str, extra_flags: tuple[str, ...] = ()) -> str:
    """Compile the front door for `plugin` into `out`; returns the compiler's warnings (if any)."""
    source = resources.files("cni").joinpath("frontdoor.c")
    with resources.as_file(source) as path:
        cmd = [*compiler.split(), *CFLAGS, *extra_flags, f'-DPODNET_PLUGIN="{plugin}"', "-o", out, str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stderr


def install_frontdoor(
    bin_dir: str,
    python: str | None = None,
    compiler: str | None = None,
    compile: bool = True,
    cache: str | None = None,
    **launcher_args,
) -> Installed:
    """Install podnet-cni and podnet-ipam into bin_dir: the compiled front door when a C
    compiler is found (or given), else the Python launchers. `python` and `launcher_args`
    go to install.write_launchers for the Python plugin either way. `cache`: a directory
    (root's own) that keeps built front doors by source and compiler, so a machine that
    installs them many times (a lab's ten node agents) compiles once.

    Every file lands by rename, so a runtime executing a plugin meanwhile sees the old or
    the new one, never a half-written file; the fallback launchers land first, so a new
    front door never looks for one that is not there yet.
    """
    compiler = (compiler or find_compiler()) if compile else None
    if compiler is None:
        why = "as asked" if not compile else "no C compiler found: cc, gcc or $CC"
        return _python_only(bin_dir, python, why, launcher_args)
    try:
        return _compiled(bin_dir, python, compiler, launcher_args, cache)
    except BuildError as e:  # e.g. a compiler without libc headers: the plugin must still work
        return _python_only(bin_dir, python, str(e).strip(), launcher_args)


def _python_only(bin_dir: str, python: str | None, why: str, launcher_args: dict) -> Installed:
    paths = install.write_launchers(bin_dir, python, **launcher_args)
    return Installed(False, tuple(paths), f"Python launchers installed ({why}); each call starts an interpreter")


def _cached_build(out: str, plugin: str, compiler: str, cache: str | None) -> None:
    """build(), or a copy of the same build made before (same source, compiler and plugin)."""
    if cache is None:
        build(out, plugin, compiler)
        return
    source = resources.files("cni").joinpath("frontdoor.c").read_bytes()
    key = hashlib.sha256(b"\0".join([source, compiler.encode(), plugin.encode(), " ".join(CFLAGS).encode()]))
    kept = os.path.join(cache, f"{plugin}-{key.hexdigest()[:16]}")
    if not os.path.exists(kept):
        os.makedirs(cache, mode=0o755, exist_ok=True)
        tmp = f"{kept}.tmp.{os.getpid()}"
        build(tmp, plugin, compiler)
        os.replace(tmp, kept)  # whole or not at all, also when two installs race
    shutil.copyfile(kept, out)


def _compiled(
    bin_dir: str, python: str | None, compiler: str, launcher_args: dict, cache: str | None = None
) -> Installed:
    os.makedirs(bin_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bin_dir, prefix=".podnet-install-") as stage:
        launchers = install.write_launchers(stage, python, **launcher_args)
        binaries = []
        for launcher in launchers:
            name = os.path.basename(launcher)
            binary = os.path.join(stage, f"{name}.bin")
            _cached_build(binary, name, compiler, cache)
            binaries.append((binary, os.path.join(bin_dir, name)))
        paths = []
        for launcher in launchers:
            target = os.path.join(bin_dir, os.path.basename(launcher) + FALLBACK_SUFFIX)
            os.replace(launcher, target)
            paths.append(target)
        for binary, target in binaries:
            os.chmod(binary, 0o755)
            os.replace(binary, target)
            paths.append(target)
    return Installed(True, tuple(paths), f"compiled front door installed (built with {compiler})")
