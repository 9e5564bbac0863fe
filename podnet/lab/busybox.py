"""What the busybox and alpine images' clients do that this machine's do otherwise: a lab pod
runs this machine's programs, and GNU wget tries a request 20 times where busybox's wget tries
once, so `wget --timeout=1 http://web` from a pod a NetworkPolicy isolates would take minutes
to fail, not a second. A pod of these images gets a wgetrc that makes wget try once.
"""

from __future__ import annotations

import os

from podnet.lab import images, names

IMAGES = ("busybox", "alpine")
WGETRC = "tries = 1\n"


def runs_busybox(image: str) -> bool:
    return images.image_name(image) in IMAGES


def pod_env(lab: str, image: str) -> dict[str, str]:
    """Environment for a command in a pod of `image`: WGETRC for busybox's images, else none."""
    if not runs_busybox(image):
        return {}
    path = os.path.join(names.state_dir(lab), "busybox.wgetrc")  # removed with the lab
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(WGETRC)
        os.replace(tmp, path)
    return {"WGETRC": path}
