"""`make bench`: run every benchmark in this directory (bench/<area>.py) as a module, one after
another, from the repository root (`python -m bench.run`), so they import `tests.support`."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    failed = 0
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".py") and name not in ("run.py", "__init__.py") and not name.startswith("_"):
            module = f"bench.{name[:-3]}"
            print(f"== python -m {module}", flush=True)
            failed |= subprocess.run([sys.executable, "-m", module], cwd=os.path.dirname(HERE)).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
