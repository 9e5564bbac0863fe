"""Drive CNI plugins as a runtime does: through cni-driver (podnet's libcni driver,
`cnidriver/main.go`) inside a node namespace, or by executing a plugin directly (for spec 1.1.0
verbs libcni 1.1.2 does not speak)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field

from netns import run as run_inside
from tests.support.netns import Namespace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE_PLUGINS = "/usr/lib/cni"  # Debian's containernetworking-plugins


class DriverMissing(RuntimeError):
    pass


def driver_path() -> str:
    """The built cni-driver: $PODNET_CNI_DRIVER, else build/cni-driver in this checkout."""
    path = os.environ.get("PODNET_CNI_DRIVER") or os.path.join(REPO, "build", "cni-driver")
    if not os.access(path, os.X_OK):
        raise DriverMissing(
            f"cni-driver is not built at {path}: run `make test-tools` as root "
            "(it installs Go and libcni from Debian and builds tests/support/cnidriver)"
        )
    return path


@dataclass
class Runtime:
    node: Namespace
    cni_path: str
    driver: str
    workdir: str
    caps: dict = field(default_factory=dict)

    def _env(self, **extra) -> dict:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_PATH": self.cni_path,
            "CNI_CACHE_DIR": os.path.join(self.workdir, "cache"),
        }
        if self.caps:
            env["CAP_ARGS"] = json.dumps(self.caps)
        env.update(extra)
        return env

    def write(self, conflist: dict) -> str:
        """The conflist as a file named for its content (parallel calls never see it half-written)."""
        text = json.dumps(conflist)
        path = os.path.join(self.workdir, f"net-{hashlib.sha256(text.encode()).hexdigest()[:12]}.conflist")
        if not os.path.exists(path):
            tmp = f"{path}.{threading.get_ident()}"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        return path

    def driver_run(
        self, verb: str, conflist: dict, pod: Namespace | str, container_id: str, ifname: str = "eth0", **env
    ) -> subprocess.CompletedProcess:
        netns_path = pod.path if isinstance(pod, Namespace) else pod
        return run_inside(
            self.node.name,
            [
                self.driver,
                verb,
                self.write(conflist),
                netns_path,
                container_id,
                ifname,
            ],
            capture_output=True,
            text=True,
            env=self._env(**env),
            timeout=60,
        )

    def add(self, conflist: dict, pod: Namespace, container_id: str, ifname: str = "eth0") -> dict:
        proc = self.driver_run("add", conflist, pod, container_id, ifname)
        assert proc.returncode == 0, f"ADD failed: {proc.stderr}{proc.stdout}"
        return json.loads(proc.stdout)

    def check(
        self, conflist: dict, pod: Namespace, container_id: str, ifname: str = "eth0"
    ) -> subprocess.CompletedProcess:
        return self.driver_run("check", conflist, pod, container_id, ifname)

    def delete(self, conflist: dict, pod: Namespace | str, container_id: str, ifname: str = "eth0") -> None:
        proc = self.driver_run("del", conflist, pod, container_id, ifname)
        assert proc.returncode == 0, f"DEL failed: {proc.stderr}{proc.stdout}"

    def plugin(
        self,
        plugin: str,
        verb: str,
        conf: dict | bytes | str,
        *,
        netns: str = "",
        container_id: str = "",
        ifname: str = "eth0",
        unset: tuple[str, ...] = (),
        **extra_env,
    ) -> tuple[int, dict | None]:
        """Execute one plugin binary directly; return (exit status, parsed stdout)."""
        env = self._env(CNI_COMMAND=verb, CNI_CONTAINERID=container_id, CNI_NETNS=netns, CNI_IFNAME=ifname, **extra_env)
        for name in unset:
            env.pop(name, None)
        stdin = conf if isinstance(conf, bytes | str) else json.dumps(conf)
        binary = os.path.join(self.cni_path.split(":")[0], plugin)
        proc = run_inside(
            self.node.name,
            [binary],
            input=stdin if isinstance(stdin, bytes) else stdin.encode(),
            capture_output=True,
            env=env,
            timeout=60,
        )
        out = proc.stdout.decode().strip()
        return proc.returncode, (json.loads(out) if out else None)
