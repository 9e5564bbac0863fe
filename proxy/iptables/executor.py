"""The iptables executor: applies a Transaction with one `iptables-restore --noflush` run (all or
nothing: a refused transaction leaves the previous rules as they were), reads what of ours the
kernel holds, and removes it all on `--cleanup`.

One iptables flavour is used throughout, the one `iptables` on PATH resolves to (nf_tables
or legacy): mixing them in one namespace would leave two rule sets that both apply.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.iptables import chains as C


class RestoreError(RuntimeError):
    pass


def detect_flavor() -> str:
    """ "nft" or "legacy": what `iptables` means on this machine."""
    try:
        out = subprocess.run(["iptables", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "nft"
    return "legacy" if "legacy" in out else "nft"


@dataclass
class Executor:
    flavor: str = "nft"
    family: int = 4  # 6: ip6tables (one proxier per family, as kube-proxy's metaproxier runs)

    @property
    def _tool(self) -> str:
        return "iptables" if self.family == 4 else "ip6tables"

    def command(self, tool: str) -> list[str]:
        cmd = [f"{self._tool}-{self.flavor}{tool}"]
        if self.flavor == "legacy":
            cmd.append("-w")  # the legacy backend serialises writers with a lock file
        return cmd

    def restore(self, chunks: Iterable[str]) -> None:
        """Feed one transaction to iptables-restore as it is produced: restore parses while the
        rest is still being rendered (two cores work at once); it commits only at the end."""
        with tempfile.TemporaryFile(mode="w+") as errors:
            proc = subprocess.Popen([*self.command("-restore"), "--noflush"], stdin=subprocess.PIPE, stderr=errors,
                                    stdout=subprocess.DEVNULL, text=True)  # fmt: skip
            assert proc.stdin is not None  # a pipe
            sent: list[str] = []
            try:
                buffered: list[str] = []
                size = 0
                for chunk in chunks:
                    sent.append(chunk)
                    buffered.append(chunk)
                    size += len(chunk)
                    if size >= 1 << 16:
                        proc.stdin.write("".join(buffered))
                        buffered, size = [], 0
                proc.stdin.write("".join(buffered))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # restore gave up early; its exit status and message say why
            except BaseException:
                proc.kill()  # rendering failed: restore must not commit, nor wait for the rest
                proc.wait()
                raise
            finally:
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                raise RestoreError(f"iptables-restore failed ({code}): {_explain(errors.read(), ''.join(sent))}")

    def save(self, table: str) -> str:
        cmd = [f"{self._tool}-{self.flavor}-save", "-t", table]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def inspect(self) -> tuple[dict[str, set[str]], tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
        """Our chains in the kernel, per table, and the hook changes needed: from one
        iptables-save per table (what a first sync, or one after a failure, needs to know)."""
        present: dict[str, set[str]] = {}
        builtin_rules: dict[tuple[str, str], list[str]] = {}
        for table in C.TABLES:
            present[table] = set()
            for line in self.save(table).splitlines():
                if line.startswith(":"):
                    chain = line[1:].split()[0]
                    if C.is_ours(chain):
                        present[table].add(chain)
                elif line.startswith("-A "):
                    chain = line[3:].split(" ", 1)[0]
                    if (table, chain) in C.BUILTINS:
                        builtin_rules.setdefault((table, chain), []).append(line)
        return present, self.hook_changes(lambda table, chain: builtin_rules.get((table, chain), []))

    def list_chain(self, table: str, chain: str) -> list[str]:
        r = subprocess.run([*self.command(""), "-t", table, "-S", chain], capture_output=True, text=True)
        return r.stdout.splitlines() if r.returncode == 0 else []

    def hook_changes(self, listing=None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(deletes, inserts) that make each built-in chain start with exactly our jumps, in order.
        A built-in chain whose jumps are already right is left alone. `listing(table, chain)`
        gives a chain's `-A` lines (default: `iptables -S` of just that chain, which spares
        dumping a table of 100,000 rules)."""
        listing = listing or self.list_chain
        deletes: list[tuple[str, str]] = []
        inserts: list[tuple[str, str]] = []
        for table, builtin in sorted(C.BUILTINS):
            want = [j.spec() for j in C.JUMPS if (j.table, j.builtin) == (table, builtin)]
            listed = listing(table, builtin)
            rules = [line[len(f"-A {builtin} ") :] for line in listed if line.startswith("-A ")]
            ours = [r for r in rules if _jumps_to_ours(r)]
            if rules[: len(want)] == want and len(ours) == len(want):
                continue
            deletes += [(table, f"-D {builtin} {r}") for r in ours]
            inserts += [(table, f"-I {builtin} 1 {spec}") for spec in reversed(want)]
        return deletes, inserts

    def cleanup_text(self) -> str:
        """The one transaction that removes the jump rules podnet wrote (the JUMPS table, and
        nothing else: a rule someone else wrote that jumps to a PODNET- chain stays) and every
        chain of ours. A chain such a foreign rule still references is emptied, not deleted:
        deleting it would make the whole transaction fail."""
        ours_jumps = {(j.table, f"-A {j.builtin} {j.spec()}") for j in C.JUMPS}
        out = []
        for table in C.TABLES:
            ours: list[str] = []
            unhook: list[str] = []
            pinned: set[str] = set()
            for line in self.save(table).splitlines():
                if line.startswith(":") and C.is_ours(line[1:].split()[0]):
                    ours.append(line[1:].split()[0])
                elif line.startswith("-A "):
                    chain, _, rest = line[3:].partition(" ")
                    if (table, line) in ours_jumps:
                        unhook.append(f"-D {chain} {rest}")
                    elif not C.is_ours(chain):
                        pinned.update(_targets_of_ours(rest))
            if not ours and not unhook:
                continue
            out.append(f"*{table}")
            out += [f":{c} - [0:0]" for c in ours]
            out += unhook
            out += [f"-X {c}" for c in ours if c not in pinned]
            out.append("COMMIT")
        return "\n".join(out) + "\n" if out else ""


def _targets_of_ours(rule: str) -> set[str]:
    words = shlex.split(rule)
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g") and C.is_ours(words[i + 1])}


def _jumps_to_ours(rule: str) -> bool:
    words = shlex.split(rule)
    for flag in ("-j", "-g"):
        if flag in words:
            i = words.index(flag)
            if i + 1 < len(words) and C.is_ours(words[i + 1]):
                return True
    return False


def _explain(stderr: str, text: str) -> str:
    """iptables-restore names a failing line by number; show that line too."""
    msg = stderr.strip()
    lines = text.splitlines()
    for word in msg.replace(":", " ").split():
        if word.isdigit() and 0 < int(word) <= len(lines) and "line" in msg:
            return f"{msg} (line {word}: {lines[int(word) - 1]})"
    return msg
