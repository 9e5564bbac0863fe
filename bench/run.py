"""`make bench`: run every benchmark script in bench/ (each prints its own table)."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    failed = []
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".py") and name != "run.py" and not name.startswith("_"):
            print(f"== bench/{name}", flush=True)
            if subprocess.run([sys.executable, os.path.join(HERE, name)]).returncode != 0:
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
