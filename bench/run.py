"""`make bench`: run every benchmark script in this directory (bench/<area>.py), one after another."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    failed = 0
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".py") and name not in ("run.py", "__init__.py") and not name.startswith("_"):
            print(f"== bench/{name}", flush=True)
            failed |= subprocess.run([sys.executable, os.path.join(HERE, name)]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
