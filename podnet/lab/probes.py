"""Readiness and liveness probes, run as kubelet runs them: from the pod's node (httpGet,
tcpSocket) or inside the pod (exec), every periodSeconds, each given timeoutSeconds, and
judged by successThreshold and failureThreshold.

A readiness probe that fails takes the pod out of its Services' ready endpoints (the proxy
then stops sending it new connections) until it passes again; a liveness probe that fails
has the kubelet restart the workload in the same pod (RESTARTS counts it).

The controller is single-threaded: a probe is a non-blocking socket (or a child process)
that each tick looks at, never a wait.
"""

from __future__ import annotations

import errno
import select
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import netns
from podnet.lab import names
from podnet.lab.pod import RUNNING, STARTING, Pod, log
from podnet.lab.spec import Probe


@dataclass
class Attempt:
    """One probe in flight."""

    deadline: float
    sock: socket.socket | None = None
    proc: subprocess.Popen | None = None
    sent: bool = False
    reply: bytes = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ProbeState:
    next_at: float
    successes: int = 0
    failures: int = 0
    attempt: Attempt | None = None
    last: str = ""  # the last result, for `describe`


@dataclass
class Prober:
    lab: str
    node_netns: Callable[[str], str]  # node name -> its namespace
    states: dict[tuple[str, str], ProbeState] = field(default_factory=dict)  # (pod, which)

    def run(self, pods: list[Pod], probes_of: Callable[[Pod], tuple[Probe | None, Probe | None]], now: float,
            restart: Callable[[Pod], None]) -> bool:  # fmt: skip
        """Advance every probe; True when a pod's readiness changed."""
        changed = False
        live = set()
        for pod in pods:
            if pod.phase != RUNNING or pod.restarting:
                continue
            readiness, liveness = probes_of(pod)
            for which, probe in (("readiness", readiness), ("liveness", liveness)):
                if probe is None:
                    continue
                key = (pod.name, which)
                live.add(key)
                st = self.states.get(key)
                if st is None:
                    st = self.states[key] = ProbeState(next_at=now + probe.initial_delay)
                result = self._step(pod, probe, st, now)
                if result is None:
                    continue
                if result:
                    st.successes, st.failures = st.successes + 1, 0
                else:
                    st.successes, st.failures = 0, st.failures + 1
                if which == "readiness":
                    if pod.unready and st.successes >= probe.success_threshold:
                        pod.unready, pod.ready_at, changed = False, now, True
                        log(f"pod {pod.name}: readiness probe passed; ready")
                    elif not pod.unready and st.failures >= probe.failure_threshold:
                        pod.unready, changed = True, True
                        log(f"pod {pod.name}: readiness probe failed {st.failures} times ({st.last}); not ready")
                elif st.failures >= probe.failure_threshold:
                    log(f"pod {pod.name}: liveness probe failed {st.failures} times ({st.last}); restarting it")
                    for k in (key, (pod.name, "readiness")):
                        self.forget(k)
                    restart(pod)
                    changed = True
        for key in list(self.states):
            if key not in live:
                self.forget(key)
        return changed

    def forget(self, key: tuple[str, str]) -> None:
        st = self.states.pop(key, None)
        if st and st.attempt:
            st.attempt.close()

    def _step(self, pod: Pod, probe: Probe, st: ProbeState, now: float) -> bool | None:
        """True/False when an attempt finished; None while waiting or in flight."""
        if st.attempt is None:
            if now < st.next_at:
                return None
            st.next_at = now + probe.period
            try:
                st.attempt = self._start(pod, probe, now)
            except OSError as e:
                st.last = str(e)
                return False
        a = st.attempt
        result = self._poll(probe, a)
        if result is None and now >= a.deadline:
            result, st.last = False, f"timed out after {probe.timeout:g}s"
        elif result is not None:
            st.last = "ok" if result else (a.reply.split(b"\r\n", 1)[0].decode(errors="replace") or "refused")
        if result is not None:
            a.close()
            st.attempt = None
        return result

    def _start(self, pod: Pod, probe: Probe, now: float) -> Attempt:
        a = Attempt(deadline=now + probe.timeout)
        if probe.kind == "exec":
            # in the pod, as a container's exec: through `ip netns exec` for its /etc view
            quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            a.proc = netns.popen(names.pod_netns(self.lab, pod.name), list(probe.command), etc=True, **quiet)
            return a
        a.sock = netns.socket(self.node_netns(pod.node))
        a.sock.setblocking(False)
        err = a.sock.connect_ex((pod.ip, probe.port))
        if err not in (0, errno.EINPROGRESS):
            a.close()
            raise OSError(err, f"connect {pod.ip}:{probe.port}: {errno.errorcode.get(err, err)}")
        return a

    def _poll(self, probe: Probe, a: Attempt) -> bool | None:
        if a.proc is not None:
            code = a.proc.poll()
            return None if code is None else code == 0
        assert a.sock is not None
        if not a.sent:
            _, writable, _ = select.select([], [a.sock], [], 0)
            if not writable:
                return None
            if a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                return False
            if probe.kind == "tcpSocket":
                return True
            request = (
                f"GET {probe.path} HTTP/1.0\r\nHost: {a.sock.getpeername()[0]}\r\nUser-Agent: kube-probe/1.30\r\n\r\n"
            )
            a.sock.send(request.encode())
            a.sent = True
        readable, _, _ = select.select([a.sock], [], [], 0)
        if not readable:
            return None
        try:
            chunk = a.sock.recv(4096)
        except OSError:
            return False
        a.reply += chunk
        if chunk and b"\r\n" not in a.reply:
            return None
        status = a.reply.split(b" ", 2)
        # kubelet: any code from 200 to 399 is a success
        return len(status) > 1 and status[1].isdigit() and 200 <= int(status[1]) < 400


def restart(pod: Pod, kill: Callable[[Pod], None], has_readiness: bool) -> None:
    """Mark the pod's workload for a restart and kill it; the kubelet starts it again when reaped
    (not ready until its readiness probe, if it has one, passes again)."""
    if pod.phase in (RUNNING, STARTING) and not pod.restarting:
        pod.restarting = True
        pod.unready = has_readiness
        kill(pod)
