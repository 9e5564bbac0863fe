"""Logging set-up for the daemons (`podnet-proxy`, `podnet cni-server`): `--logging-format
text|json`, as Kubernetes components spell it.

`json` writes one object per line in the shape of Kubernetes' JSON logs (`ts` in seconds since
the epoch, `caller`, `msg`, and `v` for the verbosity), so the collectors people already
point at kube-proxy parse ours unchanged. Standard library only: the daemons import it at
start-up and nothing else needs it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO

LOG_FORMATS = ("text", "json")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 6),
            "caller": f"{os.path.basename(record.pathname)}:{record.lineno}",
            "logger": record.name,
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        # klog puts a verbosity on info lines and none on errors; ours mirror the level
        if record.levelno < logging.WARNING:
            entry["v"] = 0 if record.levelno >= logging.INFO else 4
        if record.exc_info:
            entry["err"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(program: str, fmt: str = "text", level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Configure the root logger once, for a daemon's whole process."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"--logging-format: {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {program} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
