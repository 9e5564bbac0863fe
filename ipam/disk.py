"""The local-directory store: one directory per pool of keys, crash-safe at any instruction.

A claim is a symlink named for the key whose target is the owner. symlink(2) creates the
name and its content in one step and fails with EEXIST when the name is taken, so a claim
is atomic and exclusive without a lock, and a process killed at any point leaves either a
whole claim or none -- never a half-written file that reads as valid. There is no fsync:
a power loss can forget the newest claims but never half-write one, and after a reboot
the pods that held them are gone too (host-local makes the same trade). The lock
(flock on .lock) only serialises the allocation policy (which free key to try next).
Dot-files hold bookkeeping, never claims.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from ipam.errors import StoreUnavailable


def _name(key: str) -> str:
    # Subnets carry a '/', which a file name cannot.
    return key.replace("/", "_")


def _key(name: str) -> str:
    return name.replace("_", "/")


class DiskStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"dataDir: cannot create {directory!r}: {e.strerror}") from None

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, _name(key))

    @contextlib.contextmanager
    def lock(self):
        fd = os.open(os.path.join(self.directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reserve(self, key: str, owner: str) -> bool:
        try:
            os.symlink(owner, self._path(key))
        except FileExistsError:
            return False
        return True

    def release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def release_owner(self, owner: str) -> list[str]:
        released = [key for key, held_by in self.items().items() if held_by == owner]
        for key in released:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key))
        return released

    def owner(self, key: str) -> str | None:
        try:
            return os.readlink(self._path(key))
        except FileNotFoundError:
            return None

    def keys(self) -> set[str]:
        with os.scandir(self.directory) as entries:
            return {_key(e.name) for e in entries if not e.name.startswith(".") and e.is_symlink()}

    def items(self) -> dict[str, str]:
        out = {}
        with os.scandir(self.directory) as entries:
            for e in entries:
                if e.name.startswith(".") or not e.is_symlink():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    out[_key(e.name)] = os.readlink(e.path)
        return out

    def last_reserved(self, pool: str) -> str | None:
        try:
            return os.readlink(os.path.join(self.directory, f".last_reserved.{pool}"))
        except FileNotFoundError:
            return None

    def set_last_reserved(self, pool: str, key: str) -> None:
        # A symlink renamed into place: replaced atomically, never read half-written.
        final = os.path.join(self.directory, f".last_reserved.{pool}")
        tmp = f"{final}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(key, tmp)
        os.replace(tmp, final)
