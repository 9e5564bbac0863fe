"""Images the tutorials use whose own behaviour a lab pod must keep: the port the image's server
listens on whatever `containerPort` says (containerPort is informational in Kubernetes; nginx
answers on 80 even when a manifest lists 8080), and agnhost's HTTP subcommands, which the lab
runs as its HTTP workload because it has no agnhost binary. Pure; read by manifests.py.
"""

from __future__ import annotations

import os

# image name (last path element, no tag) -> the port its server listens on
LISTEN_PORTS = {
    "nginx": 80,
    "nginx-unprivileged": 8080,
    "httpd": 80,
    "serve_hostname": 9376,
    "serve-hostname": 9376,
    "hello-app": 8080,
    "node-hello": 8080,
    "echoserver": 8080,
    "echo-server": 8080,
}

# agnhost subcommand -> (its port flag, the flag's default)
AGNHOST_HTTP = {"netexec": ("--http-port", 8080), "serve-hostname": ("--port", 9376)}


def image_name(image: str) -> str:
    """The name of an image reference: its last path element, without tag or digest
    (`registry.k8s.io/e2e-test-images/agnhost:2.39` -> agnhost)."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def listen_port(image_name: str) -> int | None:
    return LISTEN_PORTS.get(image_name)


def agnhost_http_port(image_name: str, command: list[str]) -> int | None:
    """The port of an agnhost HTTP subcommand (`/agnhost netexec --http-port=8080`, or only
    `netexec ...` as args to the image's entrypoint); None for anything else."""
    if image_name != "agnhost" or not command:
        return None
    words = command[1:] if os.path.basename(command[0]) == "agnhost" else command
    if not words or words[0] not in AGNHOST_HTTP:
        return None
    flag, default = AGNHOST_HTTP[words[0]]
    for i, word in enumerate(words[1:], start=1):
        if word.startswith(flag + "="):
            value = word.split("=", 1)[1]
        elif word == flag and i + 1 < len(words):
            value = words[i + 1]
        else:
            continue
        return int(value) if value.isdigit() and 1 <= int(value) <= 65535 else None
    return default
