"""The one place where stdin and the CNI_* environment become validated, frozen values.

No verb touches raw JSON or os.environ: they get an Invocation and a NetConf.
"""

from __future__ import annotations

import ipaddress

from cni import jsonio, version
from cni.errors import CNIError, DecodeFailure, InvalidConfig, InvalidEnvironment
from ipam.ranges import never_pods
from ipam.value import Value

TYPE_CHECKING = False  # the type checker treats this name as true; typing is not imported
if TYPE_CHECKING:
    from typing import Final

VERBS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
# Spec "Parameters": which variables each verb requires.
_REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
    "VERSION": (),
}
# libcni's ValidateContainerID and ValidateNetworkName, [A-Za-z0-9][A-Za-z0-9_.\-]*, spelled
# without `re` (its import, with enum's, is a good part of a plugin start): see _libcni_name
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")
# podnet's own bounds, so a refusal comes before the kernel or the file system refuse half-way:
# the network name is a directory name (255 bytes), and the host veth's alias
# ("podnet NETWORK CONTAINERID IFNAME") must fit IFLA_IFALIAS's 255 bytes
MAX_NETWORK_NAME = 64
MAX_CONTAINER_ID = 160
MAX_PATH = 4095  # PATH_MAX less the NUL


def _libcni_name(value: str) -> bool:
    """A letter or digit, then letters, digits, '_', '.' or '-' (ASCII only; no trailing
    newline slips through, as `$` would let it)."""
    return bool(value) and value[0] in _ALNUM and all(c in _NAME_CHARS for c in value)


class Invocation(Value):
    """The runtime's side of one call: the CNI_* variables. (A plain class, as every value
    type on the ADD path: see cni/netlink.py's Link.)"""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")

    def __init__(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: tuple[tuple[str, str], ...] = (),
        path: tuple[str, ...] = (),
    ) -> None:
        self.command: Final = command
        self.container_id: Final = container_id
        self.netns: Final = netns
        self.ifname: Final = ifname
        self.args: Final = args
        self.path: Final = path


def text(value: str, where: str, error: type[CNIError] = InvalidConfig) -> str:
    """A string that can reach a system call: no NUL byte (C strings end there) and no lone
    surrogate (it cannot be encoded as a file name)."""
    if "\x00" in value:
        raise error(f"{where}: holds a NUL byte")
    try:
        value.encode("utf-8", "surrogateescape")  # what os.fsencode does with a name
    except UnicodeEncodeError:
        raise error(f"{where}: holds characters that cannot be encoded (a lone surrogate)") from None
    return value


def path_text(value: str, where: str, error: type[CNIError] = InvalidConfig) -> str:
    text(value, where, error)
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH:
        raise error(f"{where}: a path of {len(encoded)} bytes, more than {MAX_PATH}")
    if any(len(part) > 255 for part in encoded.split(b"/")):
        raise error(f"{where}: a path component longer than 255 bytes")
    return value


def parse_invocation(environ: dict) -> Invocation:
    for key, value in environ.items():
        if isinstance(key, str) and key.startswith("CNI_") and isinstance(value, str):
            text(value, key, InvalidEnvironment)
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise InvalidEnvironment("CNI_COMMAND: not set")
    if command not in VERBS:
        raise InvalidEnvironment(f"CNI_COMMAND: unknown verb {command!r}", f"known verbs: {', '.join(VERBS)}")
    for name in _REQUIRED[command]:
        if not environ.get(name):
            raise InvalidEnvironment(f"{name}: not set (required for {command})")
    container_id = environ.get("CNI_CONTAINERID", "")
    if container_id and not _libcni_name(container_id):
        raise InvalidEnvironment(
            f"CNI_CONTAINERID: {container_id[:80]!r} is not valid",
            "it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
        )
    if len(container_id) > MAX_CONTAINER_ID:
        raise InvalidEnvironment(f"CNI_CONTAINERID: {len(container_id)} characters, more than {MAX_CONTAINER_ID}")
    netns = environ.get("CNI_NETNS", "")
    if netns:
        path_text(netns, "CNI_NETNS", InvalidEnvironment)
    ifname = environ.get("CNI_IFNAME", "")
    if ifname:
        _check_ifname(ifname)
    args = []
    for pair in filter(None, environ.get("CNI_ARGS", "").split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"CNI_ARGS: {pair!r} is not KEY=VALUE")
        args.append((key, value))
    return Invocation(
        command=command,
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        args=tuple(args),
        path=tuple(filter(None, environ.get("CNI_PATH", "").split(":"))),
    )


def _check_ifname(ifname: str) -> None:
    """libcni's ValidateInterfaceName (the kernel's dev_valid_name), and `%`: the kernel reads
    `eth%d` as a template and makes eth0, a link the plugin would then never find again."""
    if len(ifname.encode("utf-8", "surrogateescape")) > 15:
        raise InvalidEnvironment(f"CNI_IFNAME: {ifname[:40]!r} is longer than 15 bytes")
    if ifname in (".", "..") or any(c in "/:%" or c.isspace() or not c.isprintable() for c in ifname):
        raise InvalidEnvironment(
            f"CNI_IFNAME: {ifname!r} is not a valid interface name",
            "not '.' or '..', and no '/', ':', '%', whitespace or control characters",
        )


def decode(stdin: bytes) -> dict:
    try:
        conf = jsonio.loads(stdin)
    except ValueError as e:
        raise DecodeFailure(f"network configuration: malformed JSON on stdin: {e}") from None
    except RecursionError:  # json's C scanner stops at the interpreter's recursion limit
        raise DecodeFailure("network configuration: JSON nested too deeply") from None
    if not isinstance(conf, dict):
        raise DecodeFailure("network configuration: stdin must hold a JSON object")
    return conf


class DNS(Value):
    """The netconf's dns section, as the result carries it."""

    __slots__ = ("nameservers", "domain", "search", "options")

    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        domain: str = "",
        search: tuple[str, ...] = (),
        options: tuple[str, ...] = (),
    ) -> None:
        self.nameservers: Final = nameservers
        self.domain: Final = domain
        self.search: Final = search
        self.options: Final = options

    def to_json(self) -> dict:
        out: dict = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


class NetConf(Value):
    """podnet-cni's network configuration (one entry of a conflist, as the runtime sends it)."""

    __slots__ = ("cni_version", "name", "ipam", "mtu", "ip_masq", "cluster_cidrs", "dns", "prev_result", "raw")

    def __init__(
        self,
        cni_version: str,
        name: str,
        ipam: dict,
        mtu: int | None = None,
        ip_masq: bool = False,
        cluster_cidrs: tuple = (),
        dns: DNS | None = None,
        prev_result: dict | None = None,
        raw: dict | None = None,
    ) -> None:
        self.cni_version: Final = cni_version
        self.name: Final = name
        self.ipam: Final = ipam
        self.mtu: Final = mtu
        self.ip_masq: Final = ip_masq
        self.cluster_cidrs: Final = cluster_cidrs
        self.dns: Final = dns or DNS()
        self.prev_result: Final = prev_result
        self.raw: Final = {} if raw is None else raw  # the config as sent, for IPAM and delegates


def common_fields(conf: dict) -> tuple[str, str]:
    """cniVersion and name, which every verb's config must carry."""
    cni_version = conf.get("cniVersion")
    if not isinstance(cni_version, str) or not cni_version:
        raise InvalidConfig("cniVersion: missing or not a string")
    version.check(cni_version)
    name = conf.get("name")
    if not isinstance(name, str) or not _libcni_name(name) or len(name) > MAX_NETWORK_NAME:
        raise InvalidConfig(
            f"name: {str(name)[:80]!r} is not a valid network name",
            f"letters, digits, '_', '.' and '-', starting with a letter or digit; at most {MAX_NETWORK_NAME}",
        )
    return cni_version, name


def parse_netconf(conf: dict) -> NetConf:
    cni_version, name = common_fields(conf)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise InvalidConfig("ipam.type: missing (podnet-cni needs an IPAM plugin, e.g. podnet-ipam)")
    plugin_type(ipam["type"], "ipam.type")
    if ipam["type"] in MAIN_PLUGINS:
        raise InvalidConfig(f"ipam.type: {ipam['type']!r} is a main plugin, not an IPAM plugin (it would run itself)")
    mtu = conf.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535):
        raise InvalidConfig(f"mtu: {mtu!r} is not an integer between 68 and 65535")
    ip_masq = conf.get("ipMasq", False)
    if not isinstance(ip_masq, bool):
        raise InvalidConfig(f"ipMasq: {ip_masq!r} is not a boolean")
    cluster_cidrs = parse_cidrs(conf.get("clusterCIDR", []), "clusterCIDR")
    if ip_masq and not cluster_cidrs:
        raise InvalidConfig("clusterCIDR: required with ipMasq (what pods reach without NAT)")
    prev = conf.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise InvalidConfig("prevResult: not a JSON object")
    return NetConf(
        cni_version=cni_version,
        name=name,
        ipam=ipam,
        mtu=mtu,
        ip_masq=ip_masq,
        cluster_cidrs=cluster_cidrs,
        dns=parse_dns(conf.get("dns")),
        prev_result=prev,
        raw=conf,
    )


MAIN_PLUGINS = ("podnet-cni",)  # never an IPAM plugin: delegating to one runs it again


def plugin_type(value: str, where: str) -> str:
    """A plugin's name is a file name in CNI_PATH: not a path, not `.` or `..`."""
    text(value, where)
    if value in (".", "..") or "/" in value or not value.isprintable() or len(value) > 255:
        raise InvalidConfig(f"{where}: {value[:80]!r} is not a plugin name")
    return value


def parse_cidrs(raw, field: str) -> tuple:
    """A CIDR or a list of CIDRs: networks (no host bits) that could hold pods."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise InvalidConfig(f"{field}: not a CIDR or a list of CIDRs")
    out = []
    for i, item in enumerate(items):
        try:
            net = ipaddress.ip_network(item, strict=True)
        except (ValueError, TypeError):
            raise InvalidConfig(
                f"{field}[{i}]: {str(item)[:80]!r} is not a network in CIDR form (no host bits)"
            ) from None
        problem = never_pods(net)  # the same test as IPAM's ranges
        if problem:
            raise InvalidConfig(f"{field}[{i}]: {net} {problem}")
        out.append(net)
    return tuple(out)


def parse_dns(dns) -> DNS:
    if dns is None:
        return DNS()
    if not isinstance(dns, dict):
        raise InvalidConfig("dns: not a JSON object")

    def strings(key):
        value = dns.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfig(f"dns.{key}: not a list of strings")
        return tuple(value)

    domain = dns.get("domain", "")
    if not isinstance(domain, str):
        raise InvalidConfig("dns.domain: not a string")
    return DNS(strings("nameservers"), domain, strings("search"), strings("options"))


def valid_attachments(conf: dict) -> set[tuple[str, str]]:
    """GC's list of attachments the runtime still holds: {(container id, ifname)}."""
    raw = conf.get("cni.dev/valid-attachments", [])
    if not isinstance(raw, list):
        raise InvalidConfig("cni.dev/valid-attachments: not a list")
    out = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise InvalidConfig(f"cni.dev/valid-attachments[{i}]: needs containerID and ifname")
        out.add((item["containerID"], item.get("ifname", "")))
    return out
