"""`make bench`: run every benchmark script in bench/ (each prints its own table)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
failed = []
for script in sorted(glob.glob(os.path.join(here, "*.py"))):
    if os.path.basename(script) == "run.py":
        continue
    print(f"== {os.path.basename(script)}", flush=True)
    if subprocess.run([sys.executable, script]).returncode != 0:
        failed.append(os.path.basename(script))
if failed:
    print(f"bench: {', '.join(failed)} failed or missed a bar")
sys.exit(1 if failed else 0)
