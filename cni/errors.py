"""CNI errors: each carries the spec's code, so main() can print the spec's error JSON.

Codes are from the CNI specification, "Error" section. Anything raised that is not a
CNIError becomes code 999 (internal), as the reference skel package does.
"""

from __future__ import annotations


class CNIError(Exception):
    code = 999

    def __init__(self, msg: str, details: str = ""):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class IncompatibleVersion(CNIError):
    code = 1


class UnsupportedField(CNIError):
    code = 2


class UnknownContainer(CNIError):
    code = 3


class InvalidEnvironment(CNIError):
    code = 4


class IOFailure(CNIError):
    code = 5


class DecodeFailure(CNIError):
    code = 6


class InvalidConfig(CNIError):
    code = 7


class TryAgainLater(CNIError):
    code = 11


class NotAvailable(CNIError):
    """STATUS: the plugin cannot serve ADDs."""

    code = 50


class LimitedConnectivity(CNIError):
    """STATUS: cannot serve ADDs, and existing pods may have limited connectivity."""

    code = 51


class StateDiffers(CNIError):
    """CHECK found the kernel state different from prevResult (plugin-specific code)."""

    code = 100


class RangeFull(TryAgainLater):
    """No free address left in a range: the runtime may retry once pods are deleted."""
