"""The nftables executor: one `nft -f -` run per transaction (atomic: the kernel applies all of
it or none), and clean-up of podnet's tables and nothing else."""

from __future__ import annotations

import subprocess

from proxy.nftables.layout import FAMILIES, TABLE


class NftError(RuntimeError):
    pass


def _nft(netns: str | None) -> list[str]:
    # a namespace other than the process's own is for tests and benchmarks that drive the
    # proxier in-process; the daemon always works in its own namespace
    return ["ip", "netns", "exec", netns, "nft"] if netns else ["nft"]


def run(text: str, netns: str | None = None) -> None:
    if not text:
        return
    r = subprocess.run([*_nft(netns), "-f", "-"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise NftError(f"nft -f failed ({r.returncode}): {_explain(r.stderr)}")


def _explain(stderr: str) -> str:
    # nft prints the offending line and a caret line under it; the first three lines say it all
    return " | ".join(line.strip() for line in stderr.strip().splitlines()[:3])


def our_tables(netns: str | None = None) -> list[str]:
    """podnet's tables present in this network namespace ("ip podnet", "ip6 podnet")."""
    r = subprocess.run([*_nft(netns), "list", "tables"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    ours = {f"{f.name} {TABLE}" for f in FAMILIES.values()}
    return [line.removeprefix("table ").strip() for line in r.stdout.splitlines() if line.startswith("table ")
            and line.removeprefix("table ").strip() in ours]  # fmt: skip


def cleanup(netns: str | None = None) -> list[str]:
    tables = our_tables(netns)
    run("".join(f"delete table {t}\n" for t in tables), netns)
    return [f"delete table {t}" for t in tables]
