"""The CNI plugin's input validation, pure (no root, no kernel): every refusal is a typed CNI
error naming the field, as the spec and libcni define the inputs (issue 13)."""

from __future__ import annotations

import pytest

from cni import delegate
from cni.config import parse_invocation, parse_netconf
from cni.errors import CNIError, InvalidConfig, InvalidEnvironment
from cni.ipam_plugin import load as load_ipam

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0"}


def conf(**extra) -> dict:
    ipam = {"type": "podnet-ipam", "ranges": [[{"subnet": "10.88.0.0/24"}]], "dataDir": "/tmp/x"}
    ipam.update(extra.pop("ipam", {}))
    return {"cniVersion": "1.0.0", "name": "net", "type": "podnet-cni", "ipam": ipam, **extra}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CNI_CONTAINERID", "abc\n"),  # `$` would have let this through
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a" * 300),
        ("CNI_CONTAINERID", "a b"),
        ("CNI_IFNAME", "eth%d"),  # the kernel would name it eth0
        ("CNI_IFNAME", "eth0\n"),
        ("CNI_IFNAME", "."),
        ("CNI_IFNAME", ".."),
        ("CNI_IFNAME", "a/b"),
        ("CNI_IFNAME", "a:b"),
        ("CNI_IFNAME", "a\tb"),
        ("CNI_IFNAME", "a\u00a0b"),  # a Unicode space
        ("CNI_IFNAME", "x" * 16),
        ("CNI_IFNAME", "é" * 8),  # 8 characters, 16 bytes
        ("CNI_NETNS", "/run/netns/p\x00q"),
        ("CNI_NETNS", "/run/netns/\ud800"),
        ("CNI_NETNS", "/" + "x" * 300),
        ("CNI_PATH", "/opt/cni/bin\x00"),
    ],
)
def test_bad_environment_is_code_4_naming_the_variable(variable, value):
    with pytest.raises(InvalidEnvironment) as e:
        parse_invocation(dict(ENV, **{variable: value}))
    assert e.value.code == 4 and e.value.msg.startswith(variable)


def test_valid_environment_passes():
    inv = parse_invocation(dict(ENV, CNI_CONTAINERID="a" * 64, CNI_IFNAME="net1.100"))
    assert inv.ifname == "net1.100"


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        ({"name": "net\n"}, "name"),
        ({"name": "n" * 65}, "name"),
        ({"ipam": {"type": "podnet-cni"}}, "ipam.type"),  # would execute itself
        ({"ipam": {"type": "."}}, "ipam.type"),
        ({"ipam": {"type": ".."}}, "ipam.type"),
        ({"ipam": {"type": "../bin/sh"}}, "ipam.type"),
        ({"ipam": {"type": "ip\x00am"}}, "ipam.type"),
        ({"ipMasq": True, "clusterCIDR": "0.0.0.0/0"}, "clusterCIDR[0]"),
        ({"ipMasq": True, "clusterCIDR": ["10.0.0.1/8"]}, "clusterCIDR[0]"),  # not a network
        ({"ipMasq": True, "clusterCIDR": ["10.0.0.0/8", "::/0"]}, "clusterCIDR[1]"),
        ({"ipMasq": True, "clusterCIDR": [{"a": 1}]}, "clusterCIDR[0]"),
    ],
)
def test_bad_netconf_is_code_7_naming_the_field(mutation, field):
    with pytest.raises(InvalidConfig) as e:
        parse_netconf(conf(**mutation))
    assert e.value.code == 7 and e.value.msg.startswith(field), e.value.msg


@pytest.mark.parametrize(
    "subnet",
    [
        "0.0.0.0/0",
        "::/0",
        "224.0.0.0/24",  # multicast
        "ff02::/64",
        "127.0.0.0/8",  # loopback
        "::1/128",
        "169.254.0.0/16",  # link-local
        "169.254.1.0/24",  # holds the pods' gateway 169.254.1.1
        "fe80::/64",
        "255.255.255.252/30",  # holds the broadcast address
        "0.0.0.0/24",  # "this network"
        "::ffff:10.0.0.0/120",  # IPv4-mapped
        "fd00::%eth0/64",  # zone-scoped
    ],
)
def test_addresses_that_can_never_hold_pods_are_refused(subnet):
    with pytest.raises(InvalidConfig) as e:
        load_ipam(conf(ipam={"ranges": [[{"subnet": subnet}]]}))
    assert "ipam.ranges[0][0].subnet" in e.value.msg


@pytest.mark.parametrize(
    "data_dir",
    ["/var/lib/\x00x", "/var/lib/\ud800", "/" + "d/" * 2000, "/" + "x" * 256, "relative/dir"],
)
def test_bad_data_dirs_are_refused_before_the_file_system_is_touched(data_dir):
    with pytest.raises(InvalidConfig) as e:
        load_ipam(conf(ipam={"dataDir": data_dir}))
    assert "ipam.dataDir" in e.value.msg


@pytest.mark.parametrize("store", ["file:/x\x00y", "etcd://h:2379/p\n", "file:/" + "x" * 300])
def test_bad_store_urls_are_refused(store):
    with pytest.raises(InvalidConfig) as e:
        load_ipam(conf(ipam={"store": store}))
    assert "ipam.store" in e.value.msg


def test_delegation_depth_is_bounded():
    env = {delegate.DEPTH: str(delegate.MAX_DEPTH)}
    with pytest.raises(InvalidConfig) as e:
        delegate.execute("host-local", "ADD", conf(), env, ("/usr/lib/cni",))
    assert "deep" in e.value.msg
    with pytest.raises(InvalidConfig):  # a counter someone set to junk counts as too deep
        delegate.execute("host-local", "ADD", conf(), {delegate.DEPTH: "x" * 10}, ("/usr/lib/cni",))


def test_a_directory_is_not_a_plugin(tmp_path):
    (tmp_path / "ipam").mkdir()
    with pytest.raises(InvalidConfig) as e:
        delegate.find("ipam", (str(tmp_path),))
    assert "not found" in e.value.msg


def test_every_refusal_is_typed():
    # the generic 999 is for bugs only: each refusal above is a CNIError with a spec code
    assert issubclass(InvalidConfig, CNIError) and InvalidConfig.code == 7 and InvalidEnvironment.code == 4


class _Host:
    """Netlink's host side, where the kernel makes the link and the next step then fails."""

    def __init__(self, existing: bool = False) -> None:
        self.links: set[str] = set()
        self.existing = existing

    def add_veth(self, name: str, peer: str, fd: int, mtu: int) -> None:
        if self.existing:
            self.links.add(name)
            raise FileExistsError(17, "File exists")
        self.links.add(name)

    def set_up_with_alias(self, name: str, alias: str) -> None:
        raise OSError(34, "Numerical result out of range")

    def get_link(self, name: str):
        return object() if name in self.links else None

    def del_link(self, name: str) -> bool:
        present = name in self.links
        self.links.discard(name)
        return present


def test_a_link_made_by_a_failed_call_is_removed():
    import contextlib

    from cni import plugin

    host = _Host()
    inv = parse_invocation(ENV)
    with contextlib.ExitStack() as undo, pytest.raises(OSError):
        plugin.make_veth(undo, host, None, 0, parse_netconf(conf()), inv, 1500)
    assert host.links == set()


def test_a_link_that_was_there_before_is_left_alone_and_so_is_its_address():
    import contextlib

    from cni import plugin

    host = _Host(existing=True)
    released = []
    inv = parse_invocation(ENV)
    with contextlib.ExitStack() as undo, pytest.raises(InvalidConfig):
        undo.callback(released.append, "ipam")
        plugin.make_veth(undo, host, None, 0, parse_netconf(conf()), inv, 1500)
    assert host.links and released == []
