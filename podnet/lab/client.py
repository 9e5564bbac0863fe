"""A request loop, run inside a namespace (a pod, a node, or the lab's 'outside'):
`python -m podnet.lab.client HOST PORT --count N` prints each answer, then one JSON summary
line (who served how many, how many failed), which `podnet lab curl` and the tests read."""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import time
from collections import Counter


def request(host: str, port: int, path: str, timeout: float) -> tuple[bool, str, str, str]:
    """One GET on a fresh connection: (ok, pod, version, body or error)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        conn.close()
        ok = resp.status == 200
        return ok, resp.getheader("X-Pod-Name", ""), resp.getheader("X-Pod-Version", ""), body.strip()
    except (OSError, http.client.HTTPException) as e:
        return False, "", "", f"error: {e}"


_stop = False


def _on_term(*_) -> None:
    global _stop
    _stop = True


def loop(host, port, path, count, duration, interval, timeout, quiet) -> dict:
    pods: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    ok = failed = 0
    start = time.monotonic()
    n = 0
    while not _stop and ((count and n < count) or (duration and time.monotonic() - start < duration)):
        n += 1
        good, pod, version, body = request(host, port, path, timeout)
        if good:
            ok += 1
            pods[pod] += 1
            versions[version] += 1
        else:
            failed += 1
            errors[body] += 1
        if not quiet:
            print(body, flush=True)
        if interval:
            time.sleep(interval)
    return {
        "requests": n,
        "ok": ok,
        "failed": failed,
        "pods": dict(pods),
        "versions": dict(versions),
        "errors": dict(errors),
        "seconds": round(time.monotonic() - start, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="podnet.lab.client")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--path", default="/")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--duration", type=float, default=0.0, help="loop this many seconds instead of --count")
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_term)  # stop after the request in flight, still tally
    summary = loop(a.host, a.port, a.path, 0 if a.duration else a.count, a.duration, a.interval, a.timeout, a.quiet)
    print(json.dumps(summary), flush=True)
    sys.exit(0 if summary["failed"] == 0 else 1)


if __name__ == "__main__":
    main()
