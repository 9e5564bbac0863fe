"""Pid files name a process (pid and start time): a pid reused by another process is never
taken for the one recorded, and never signalled."""

from __future__ import annotations

import signal
import subprocess

from podnet.lab import pids


def test_a_pid_file_names_its_process_and_a_reused_pid_is_never_signalled(tmp_path):
    path = str(tmp_path / "x.pid")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        pids.write(path, proc.pid)
        assert pids.read(path) == proc.pid
        pid, started = pids.read_record(path)
        # the same pid with another start time: what a pid file looks like once its process is
        # gone and the pid went to a newcomer (here the newcomer is simulated by the live sleep)
        (tmp_path / "x.pid").write_text(f"{pid} {started + 1}\n")
        assert pids.read(path) is None
        assert pids.kill(path, signal.SIGKILL) is None
        assert proc.poll() is None  # not signalled
        # a file with a bare pid (no start time) cannot be checked: it names no process
        (tmp_path / "x.pid").write_text(f"{pid}\n")
        assert pids.read(path) is None and pids.kill(path) is None and proc.poll() is None
        # the right record: signalled
        pids.write(path, proc.pid)
        assert pids.kill(path, signal.SIGTERM) == proc.pid
        assert proc.wait(timeout=5) == -signal.SIGTERM
        # and once it has exited (and been reaped) the file names nothing
        assert pids.read(path) is None and pids.kill(path) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_zombie_is_no_process_to_signal(tmp_path):
    proc = subprocess.Popen(["true"])
    started = pids.start_time(proc.pid)
    while pids.start_time(proc.pid) is not None:  # exited but not reaped: a zombie
        pass
    assert not pids.send(proc.pid, started or 1, signal.SIGKILL)
    proc.wait()
