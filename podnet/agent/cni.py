"""The node's CNI side: the launchers and conflist a runtime finds (what `podnet install-cni`
writes), a warm in-process server for the plugin's calls (today's cni-server, on the
namespace's abstract socket), and the start-up GC of attachments whose pods are gone."""

from __future__ import annotations

import io
import json
import logging
import os
import threading

from cni import frontdoor, install, skel
from cni.netlink import Netlink
from cni.plugin import HANDLERS
from cni.server import CNIServer
from cni.veth import parse_alias

log = logging.getLogger("podnet.agent")

NETWORK = "podnet"
FRONTDOOR_CACHE = "/var/cache/podnet/frontdoor"  # built once per machine, not once per agent start


class NodeCNI:
    def __init__(self, bin_dir: str, conf_dir: str, data_dir: str, subnets: list[str], mtu: int,
                 cluster_cidrs: tuple[str, ...]) -> None:  # fmt: skip
        self.bin_dir, self.conf_dir = bin_dir, conf_dir
        # no ipMasq per attachment: the agent masquerades the node's whole subnet (masquerade.py)
        self.opts = install.ConflistOptions(name=NETWORK, subnets=tuple(subnets), mtu=mtu or None, data_dir=data_dir,
                                            ip_masq=False, cluster_cidrs=cluster_cidrs)  # fmt: skip
        self.server: CNIServer | None = None
        self._thread: threading.Thread | None = None

    def install(self) -> str:
        # the compiled front door (cni/frontdoor.c): a pod's call costs no interpreter start
        done = frontdoor.install_frontdoor(self.bin_dir, cache=FRONTDOOR_CACHE if os.geteuid() == 0 else None)
        log.info("%s", done.note)
        return install.write_conflist(self.conf_dir, self.opts)

    def gc(self) -> int:
        """Release what pods that no longer exist held: their namespace went, and their veth with it.

        The attachments still alive are the podnet veths on this node (their alias names the
        container and interface); CNI GC with that list frees every other allocation.
        """
        with Netlink() as host:
            valid = [
                {"containerID": owner[1], "ifname": owner[2]}
                for link in host.links()
                if (owner := parse_alias(link.alias)) and owner[0] == NETWORK
            ]
        conf = dict(install.conflist(self.opts)["plugins"][0])
        conf.update({"cniVersion": "1.1.0", "name": NETWORK, "cni.dev/valid-attachments": valid})
        env = {"CNI_COMMAND": "GC", "CNI_PATH": self.bin_dir}
        out = io.StringIO()
        status = skel.run(HANDLERS, environ=env, stdin=io.BytesIO(json.dumps(conf).encode()), stdout=out)
        if status != 0:
            log.error("CNI GC failed: %s", out.getvalue().strip())
        return len(valid)

    def serve(self) -> None:
        self.server = CNIServer()
        self._thread = threading.Thread(target=self.server.serve_forever, name="podnet-agent-cni", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
