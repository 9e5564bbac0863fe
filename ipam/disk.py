"""The local-directory store: one directory per pool of keys, crash-safe at any instruction.

A claim is a symlink named for the key whose target is the owner. symlink(2) creates the
name and its content in one step and fails with EEXIST when the name is taken, so a claim
is atomic and exclusive without a lock, and a process killed at any point leaves either a
whole claim or none -- never a half-written file that reads as valid. There is no fsync:
a power loss can forget the newest claims but never half-write one, and after a reboot
the pods that held them are gone too (host-local makes the same trade). The lock
(flock on .lock) only serialises the allocation policy (which free key to try next).
Dot-files hold bookkeeping, never claims; child stores are subdirectories.

A claim with a lease carries it in the same symlink (owner, a record separator, the expiry
time and the TTL), so claim and lease are one object and can never disagree after a crash.
Renewing replaces the symlink by rename(2). Expired claims read as absent; they are removed
under the lock, by a later claim of the same key or by expire().
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from ipam.errors import IPAMError, StoreUnavailable

LEASE_SEP = "\x1e"  # ASCII record separator: never part of an owner


def _name(key: str) -> str:
    # Subnets carry a '/', which a file name cannot.
    return key.replace("/", "_")


def _key(name: str) -> str:
    return name.replace("_", "/")


def _claim_target(owner: str, ttl: int | None) -> str:
    if ttl is None:
        return owner
    return f"{owner}{LEASE_SEP}{time.time() + ttl:.3f} {ttl}"


def _parse_target(target: str) -> tuple[str, float | None, int | None]:
    """(owner, expiry time or None, ttl or None)."""
    owner, sep, lease = target.partition(LEASE_SEP)
    if not sep:
        return owner, None, None
    expiry, _, ttl = lease.partition(" ")
    return owner, float(expiry), int(ttl)


def _live(target: str, now: float) -> bool:
    _, expiry, _ = _parse_target(target)
    return expiry is None or expiry > now


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

    def child(self, name: str) -> DiskStore:
        if not name or name.startswith("."):
            raise IPAMError(f"store child name {name!r}: empty or starting with '.'")
        return DiskStore(os.path.join(self.directory, _name(name)))

    def _target(self, key: str) -> str | None:
        try:
            return os.readlink(self._path(key))
        except (FileNotFoundError, OSError):
            return None

    def reserve(self, key: str, owner: str, ttl: int | None = None) -> bool:
        path = self._path(key)
        for _ in range(2):
            try:
                os.symlink(_claim_target(owner, ttl), path)
            except FileExistsError:
                target = self._target(key)
                if target is None or _live(target, time.time()):
                    return False
                # An expired lease: callers hold lock() here, so nobody renews it meanwhile.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            return True
        return False

    def renew(self, key: str) -> bool:
        target = self._target(key)
        if target is None or not _live(target, time.time()):
            return False
        owner, expiry, ttl = _parse_target(target)
        if ttl is None:
            return True
        self._replace(self._path(key), _claim_target(owner, ttl))
        return True

    def expire(self) -> list[str]:
        now, gone = time.time(), []
        with os.scandir(self.directory) as entries:
            for e in entries:
                if e.name.startswith(".") or not e.is_symlink():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if not _live(os.readlink(e.path), now):
                        os.unlink(e.path)
                        gone.append(_key(e.name))
        return gone

    def _replace(self, final: str, target: str) -> None:
        # A symlink renamed into place: replaced atomically, never read half-written.
        tmp = f"{os.path.join(self.directory, '.tmp')}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, final)

    def release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def release_owner(self, owner: str) -> list[str]:
        released = [key for key, held_by in self.items().items() if held_by == owner]
        for key in released:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key))
        return released

    def held_by(self, owner: str) -> list[str]:
        return [key for key, held_by in self.items().items() if held_by == owner]

    def owner(self, key: str) -> str | None:
        target = self._target(key)
        if target is None or not _live(target, time.time()):
            return None
        return _parse_target(target)[0]

    def keys(self) -> set[str]:
        return set(self.items())

    def items(self) -> dict[str, str]:
        out, now = {}, time.time()
        with os.scandir(self.directory) as entries:
            for e in entries:
                if e.name.startswith(".") or not e.is_symlink():
                    continue
                try:
                    target = os.readlink(e.path)
                except FileNotFoundError:
                    continue
                if LEASE_SEP not in target:  # the common case, kept cheap: one readlink a claim
                    out[_key(e.name)] = target
                elif _live(target, now):
                    out[_key(e.name)] = _parse_target(target)[0]
        return out

    def last_reserved(self, pool: str) -> str | None:
        try:
            return os.readlink(os.path.join(self.directory, f".last_reserved.{pool}"))
        except FileNotFoundError:
            return None

    def set_last_reserved(self, pool: str, key: str) -> None:
        final = os.path.join(self.directory, f".last_reserved.{pool}")
        tmp = f"{final}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(key, tmp)
        os.replace(tmp, final)
