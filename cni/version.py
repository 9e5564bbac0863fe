"""CNI spec versions: which ones podnet speaks, and how a result is written for each."""

from __future__ import annotations

from cni.errors import IncompatibleVersion

SUPPORTED = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check(version: str, field: str = "cniVersion") -> str:
    if version not in SUPPORTED:
        raise IncompatibleVersion(
            f"{field}: version {version!r} is not supported",
            f"supported versions: {', '.join(SUPPORTED)}",
        )
    return version


def at_least(version: str, minimum: str) -> bool:
    return _key(version) >= _key(minimum)


def info() -> dict:
    return {"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)}


def convert_result(result: dict, version: str) -> dict:
    """Write a 1.x-shaped result in the format of `version`.

    0.3.x and 0.4.0 carry an explicit "version" ("4" or "6") per IP; 1.0.0 dropped it.
    """
    out = dict(result, cniVersion=version)
    if not at_least(version, "1.0.0"):
        out["ips"] = [dict(ip, version="6" if ":" in ip["address"] else "4") for ip in result.get("ips", [])]
    else:
        out["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in result.get("ips", [])]
    return out
