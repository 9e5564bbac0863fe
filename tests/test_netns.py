"""The namespace primitive (netns/): entering, running, sockets, refusals, and that a thread
always comes home. Every check happens inside test namespaces; the namespace the tests run
in is only ever looked at (its inode), never changed."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

import netns
from cni.errors import UnknownContainer
from cni.plugin import open_pod_netns

pytestmark = pytest.mark.integration


def inode_here() -> int:
    """The network namespace of the calling thread, as an inode number."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def inode_of(ns) -> int:
    return os.stat(ns.path).st_ino


@pytest.fixture
def two(netns):  # the conftest fixture: fresh namespaces, removed when the test ends
    return netns("pnt-nsa"), netns("pnt-nsb")


def test_entered_moves_this_thread_and_back(two):
    a, _ = two
    home = inode_here()
    for target in (a.name, a.path):
        with netns.entered(target):
            assert inode_here() == inode_of(a)
        assert inode_here() == home
    fd = netns.open(a.path)
    try:
        with netns.entered(fd):
            assert inode_here() == inode_of(a)
        os.fstat(fd)  # a caller's fd is the caller's: still open
    finally:
        os.close(fd)
    assert inode_here() == home


def test_thread_comes_home_when_the_block_raises(two):
    a, b = two
    home = inode_here()
    with pytest.raises(RuntimeError), netns.entered(a.name), netns.entered(b.name):
        raise RuntimeError("boom")
    assert inode_here() == home


def test_other_threads_stay_where_they_are(two):
    """Threads already running stay home; one started from inside starts inside, as a child does."""
    a, _ = two
    home = inode_here()
    seen: list[int] = []
    go = threading.Event()

    def look() -> None:
        go.wait()
        seen.append(inode_here())

    before = threading.Thread(target=look)
    before.start()
    with netns.entered(a.name):
        go.set()
        before.join()
        during = threading.Thread(target=look)
        during.start()
        during.join()
    assert seen == [home, inode_of(a)]


def test_run_and_popen_start_the_command_inside(two):
    a, _ = two
    home = inode_here()
    r = netns.run(a.name, ["readlink", "/proc/self/ns/net"], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == f"net:[{inode_of(a)}]"
    assert inode_here() == home
    r = netns.run(a.path, ["cat"], input="hello", capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, "hello")
    with pytest.raises(subprocess.CalledProcessError):
        netns.run(a.name, ["false"], check=True)
    with netns.popen(a.name, ["ip", "-o", "link"], stdout=subprocess.PIPE, text=True) as p:
        links = [line.split(":")[1].strip() for line in p.stdout.read().splitlines()]
    assert links == ["lo"]
    assert inode_here() == home


def test_run_from_many_threads_at_once(two):
    """Each thread's child lands in that thread's namespace, however they interleave."""
    want = {ns.name: f"net:[{inode_of(ns)}]" for ns in two}
    got: dict[int, tuple[str, str]] = {}

    def work(i: int) -> None:
        name = two[i % 2].name
        for _ in range(10):
            out = netns.run(name, ["readlink", "/proc/self/ns/net"], capture_output=True, text=True).stdout
            if out.strip() != want[name]:
                got[i] = (name, out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {}


def test_run_with_etc_goes_through_ip_netns_exec(two):
    a, _ = two
    etc = f"/etc/netns/{a.name}"
    os.makedirs(etc)
    try:
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write("192.0.2.7 only-in-this-namespace\n")
        r = netns.run(a.name, ["cat", "/etc/hosts"], etc=True, capture_output=True, text=True, check=True)
        assert "only-in-this-namespace" in r.stdout
        assert (
            "only-in-this-namespace"
            not in netns.run(a.name, ["cat", "/etc/hosts"], capture_output=True).stdout.decode()
        )
    finally:
        os.remove(os.path.join(etc, "hosts"))
        os.rmdir(etc)
    with pytest.raises(netns.NamespaceError):
        netns.run(a.path, ["true"], etc=True)


def test_socket_stays_bound_to_its_namespace(two):
    a, b = two
    home = inode_here()
    with netns.socket(a.name) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert inode_here() == home
        with netns.socket(b.name) as other, pytest.raises(ConnectionRefusedError):
            other.connect(("127.0.0.1", port))
        with netns.socket(a.path, socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect(("127.0.0.1", port))  # made inside a, used from here
            server.accept()[0].close()


def test_not_a_namespace_is_refused(tmp_path):
    cases = {
        str(tmp_path / "absent"): "does not exist",
        str(tmp_path): "a directory",
        "/proc/self/ns/mnt": "another kind",
    }
    (tmp_path / "plain").write_text("")
    cases[str(tmp_path / "plain")] = "an ordinary file"
    for path, reason in cases.items():
        with pytest.raises(netns.NamespaceError) as e:
            netns.open(path)
        assert e.value.path == path and reason in e.value.reason
        assert isinstance(e.value, OSError)
        with pytest.raises(netns.NamespaceError), netns.entered(path):
            pytest.fail("entered a namespace that is not one")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            netns.open(fifo)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout=5)
    if t.is_alive():
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # unblock the stuck open, then fail
        pytest.fail("opening a FIFO blocked")
    assert len(errors) == 1 and isinstance(errors[0], netns.NamespaceError)
    assert "FIFO" in errors[0].reason


def test_cni_plugin_turns_it_into_unknown_container(tmp_path):
    """The CNI code is chosen at the plugin's boundary, from the primitive's own error."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    for path in (str(tmp_path / "absent"), fifo):
        with pytest.raises(UnknownContainer) as e:
            open_pod_netns(path)
        assert e.value.code == 3 and path in e.value.msg and e.value.msg.startswith("CNI_NETNS:")
