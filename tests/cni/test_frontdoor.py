"""The compiled front door (cni/frontdoor.c) on its own: whole requests of any size, the
server's exit status relayed, code 11 when the server dies mid-call and never a second run
here, the Python plugin executed (stdin untouched) only when nobody listens."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cni import frontdoor
from cni.shim import STDIN_LENGTH, IncompleteRequest, decode_request, encode_request
from tests.cni.conftest import allocations, podnet_conf

pytestmark = pytest.mark.integration

# A stand-in for the node's CNI server, so a test decides exactly how the server behaves.
FAKE_SERVER = textwrap.dedent(
    """
    import hashlib, json, os, socket, struct, sys
    from cni.shim import SOCKET_NAME, decode_request
    mode = sys.argv[1]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(SOCKET_NAME)
    srv.listen(8)
    print("ready", flush=True)
    conn, _ = srv.accept()
    data = b""
    while chunk := conn.recv(1 << 20):
        data += chunk
    plugin, env, stdin = decode_request(data)
    if mode == "echo":
        out = {"plugin": plugin, "env": env, "stdin_sha256": hashlib.sha256(stdin).hexdigest(), "stdin_len": len(stdin)}
        conn.sendall(b"\\0" + json.dumps(out).encode())
    elif mode.startswith("status="):
        conn.sendall(bytes([int(mode[7:])]) + b"relayed output\\n")
    elif mode == "die":
        os._exit(0)  # the request arrived whole; the server dies before answering
    elif mode == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # an abortive close: the client reads ECONNRESET
    """
)

# Stands in for the Python plugin the front door executes when no server listens.
FAKE_FALLBACK = """#!/bin/sh
cat > "$FALLBACK_STDIN"
echo '{"ran": "fallback"}'
exit 3
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> str:
    """podnet-cni's front door alone, beside a fake fallback that records it ran."""
    d = tmp_path_factory.mktemp("frontdoor")
    compiler = frontdoor.find_compiler()
    assert compiler, "these tests need a C compiler (gcc)"
    frontdoor.build(str(d / "podnet-cni"), "podnet-cni", compiler)
    fallback = d / f"podnet-cni{frontdoor.FALLBACK_SUFFIX}"
    fallback.write_text(FAKE_FALLBACK)
    fallback.chmod(0o755)
    return str(d / "podnet-cni")


@pytest.fixture
def fake_server(node, tmp_path):
    procs = []

    def start(mode: str) -> None:
        proc = node.popen(sys.executable, "-c", FAKE_SERVER, mode, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline() == b"ready\n"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def call(node, binary: str, env: dict, stdin: bytes = b"{}", timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", node.name, binary], input=stdin, env=env, capture_output=True, timeout=timeout
    )


def test_builds_without_warnings(tmp_path):
    compiler = frontdoor.find_compiler()
    for name in ("podnet-cni", "podnet-ipam"):
        warnings = frontdoor.build(str(tmp_path / name), name, compiler, ("-Werror",))
        assert warnings == ""


def test_huge_environment_and_stdin_arrive_whole(node, fake_server, built, tmp_path):
    fake_server("echo")
    # 1.5 MB of environment (near the kernel's limit for exec) and 40 MB of stdin.
    env = {f"BIG_{i}": chr(ord("a") + i) * 100_000 for i in range(15)}
    env.update(CNI_COMMAND="ADD", EMPTY="", WITH_EQUALS="a=b=c")
    stdin = os.urandom(40 << 20)
    proc = call(node, built, env, stdin, timeout=60)
    assert proc.returncode == 0, proc.stdout
    got = json.loads(proc.stdout)
    assert got["plugin"] == "podnet-cni"
    assert got["stdin_len"] == len(stdin) and got["stdin_sha256"] == hashlib.sha256(stdin).hexdigest()
    assert {k: v for k, v in got["env"].items() if k in env} == env
    assert STDIN_LENGTH not in got["env"]  # checked and removed by the server


@pytest.mark.parametrize("status", [0, 1, 7, 255])
def test_exit_status_and_stdout_are_relayed(status, node, fake_server, built):
    fake_server(f"status={status}")
    proc = call(node, built, {"CNI_COMMAND": "ADD"})
    assert proc.returncode == status and proc.stdout == b"relayed output\n"


@pytest.mark.parametrize("how", ["die", "reset"])
def test_server_dying_mid_call_is_try_again_and_never_runs_here(how, node, fake_server, built, tmp_path):
    fake_server(how)
    marker = tmp_path / "fallback-stdin"
    proc = call(node, built, {"CNI_COMMAND": "ADD", "FALLBACK_STDIN": str(marker)})
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 11 and "try again" in err["msg"]
    assert not marker.exists()  # the request reached a server: it is never run a second time


def test_without_a_server_the_python_plugin_runs_with_stdin_untouched(node, built, tmp_path):
    marker = tmp_path / "fallback-stdin"
    stdin = os.urandom(3 << 20)
    proc = call(node, built, {"CNI_COMMAND": "ADD", "FALLBACK_STDIN": str(marker)}, stdin)
    assert proc.returncode == 3 and json.loads(proc.stdout) == {"ran": "fallback"}
    assert marker.read_bytes() == stdin


def test_without_a_server_or_python_plugin_the_error_names_what_is_missing(node, tmp_path):
    binary = str(tmp_path / "podnet-cni")
    frontdoor.build(binary, "podnet-cni", frontdoor.find_compiler())
    proc = call(node, binary, {"CNI_COMMAND": "ADD"})
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 999 and "Python plugin cannot run" in err["msg"]


@pytest.mark.parametrize("plugin_mode", ["standalone", "server"], indirect=True)
def test_version_never_waits_for_stdin(plugin_mode, node, runtime):
    binary = os.path.join(runtime.cni_path.split(":")[0], "podnet-cni")
    proc = node.popen(binary, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=runtime._env(CNI_COMMAND="VERSION"))
    try:
        assert proc.wait(timeout=20) == 0  # stdin is still open
        assert "1.1.0" in json.loads(proc.stdout.read())["supportedVersions"]
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()


def test_real_server_killed_mid_call_is_try_again_and_nothing_is_done(netns, node, runtime, tmp_path):
    """Both launcher kinds: the server takes the call, then dies before doing it."""
    server = node.popen(sys.executable, "-m", "podnet.cli", "cni-server", stderr=subprocess.PIPE)
    try:
        assert "listening" in server.stderr.readline().decode()
        server.send_signal(signal.SIGSTOP)  # the connection waits in the backlog, unaccepted
        pod = netns("pnt-pod")
        conf = podnet_conf(tmp_path, "1.1.0")
        env = runtime._env(CNI_COMMAND="ADD", CNI_CONTAINERID="killed", CNI_NETNS=pod.path, CNI_IFNAME="eth0")
        binary = os.path.join(runtime.cni_path.split(":")[0], "podnet-cni")
        proc = node.popen(binary, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        proc.stdin.write(json.dumps(conf).encode())
        proc.stdin.close()
        _wait_blocked_on_reply(proc.pid)
        server.kill()
        assert proc.wait(timeout=20) == 1
        assert json.loads(proc.stdout.read())["code"] == 11
        assert allocations(tmp_path) == [] and pod.links() == ["lo"]
    finally:
        server.kill()
        server.wait()


def _wait_blocked_on_reply(pid: int, timeout: float = 20) -> None:
    """Until the client sits in a socket read (it has sent its request and awaits the reply)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/wchan") as f:
            if f.read() in ("unix_stream_read_generic", "unix_stream_data_wait"):
                return
        time.sleep(0.01)
    raise AssertionError("the client never waited for the server's reply")


def test_the_server_runs_no_request_cut_short(node, netns, tmp_path):
    """A client killed while sending also ends the stream; the server must not act on it."""
    pod = netns("pnt-pod")
    conf = json.dumps(podnet_conf(tmp_path, "1.1.0")).encode()
    env = {b"CNI_COMMAND": b"ADD", b"CNI_CONTAINERID": b"cut", b"CNI_NETNS": pod.path.encode(), b"CNI_IFNAME": b"eth0"}
    whole = encode_request("podnet-cni", env, conf)
    assert decode_request(whole)[2] == conf
    for cut in (len(whole) - 1, len(whole) - len(conf), 30):
        with pytest.raises(IncompleteRequest):
            decode_request(whole[:cut])
    send = textwrap.dedent(
        f"""
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b"\\0podnet-cni")
        s.sendall(sys.stdin.buffer.read()[:{len(whole) - 1}])
        s.shutdown(socket.SHUT_WR)
        sys.stdout.buffer.write(s.recv(100))
        """
    )
    server = node.popen(sys.executable, "-m", "podnet.cli", "cni-server", stderr=subprocess.PIPE)
    try:
        assert "listening" in server.stderr.readline().decode()
        proc = node.run(sys.executable, "-c", send, input=whole.decode())
        assert proc.stdout == ""  # no answer: nothing ran
        assert "incomplete request" in server.stderr.readline().decode()
        assert allocations(tmp_path) == [] and pod.links() == ["lo"]
    finally:
        server.kill()
        server.wait()


def test_install_puts_the_front_door_under_the_plugin_names(tmp_path):
    done = frontdoor.install_frontdoor(str(tmp_path))
    assert done.compiled and "compiled" in done.note
    for name in ("podnet-cni", "podnet-ipam"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x7fELF"
        assert (tmp_path / f"{name}-python").read_text().startswith("#!")
    assert sorted(os.listdir(tmp_path)) == ["podnet-cni", "podnet-cni-python", "podnet-ipam", "podnet-ipam-python"]


@pytest.mark.parametrize("compiler", ["/nonexistent/cc", "false"])
def test_without_a_working_compiler_the_python_launchers_are_installed_and_it_says_why(compiler, tmp_path, monkeypatch):
    monkeypatch.setenv("CC", compiler)
    done = frontdoor.install_frontdoor(str(tmp_path))
    assert not done.compiled and "Python launchers installed" in done.note
    assert ("no C compiler" in done.note) == (compiler == "/nonexistent/cc")
    assert (tmp_path / "podnet-cni").read_text().startswith("#!")
