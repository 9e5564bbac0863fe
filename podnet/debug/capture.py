"""Packet capture inside any namespace: one AF_PACKET socket per place, with the kernel
filtering by BPF and stamping each packet with its arrival time.

A socket opened inside a namespace stays bound to it after the thread leaves, so one process
watches a pod's veth, every node and the underlay at once, without forking a tcpdump per
namespace. What reached the socket before its filter was attached is drained and dropped,
as libpcap does, so only filtered packets are ever reported.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import netns
from podnet.debug import bpf
from podnet.debug.topology import Place

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
# A burst on a veth outruns anything that prints per packet: the kernel must hold it while
# we catch up. rmem_max (often 208 KiB) caps SO_RCVBUF; root may go past it with FORCE.
BUFFER = 32 * 1024 * 1024
BATCH = 4096


@dataclass(frozen=True)
class Frame:
    ts_ns: int
    place: Place
    ifname: str
    outgoing: bool
    data: bytes


class Tap:
    """A capture socket on one place (one interface, or every interface of a namespace)."""

    def __init__(self, place: Place, program: list | None):
        self.place = place
        self.sock = _packet_socket(place.path())
        try:
            if program:
                bpf.attach(self.sock, program)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
            if place.ifname:
                self.sock.bind((place.ifname, ETH_P_ALL))
            self.sock.setblocking(False)
            while self._discard():
                pass
        except OSError as e:
            self.sock.close()
            where = f"{place.ifname} in {place.netns or 'this namespace'}"
            raise OSError(e.errno, f"cannot capture on {where}: {e.strerror}") from None

    def _discard(self) -> bool:
        try:
            self.sock.recv(65535)
            return True
        except BlockingIOError:
            return False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> Frame | None:
        try:
            data, anc, _flags, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return None
        ts = time.time_ns()
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                sec, nsec = struct.unpack("qq", value[:16])
                ts = sec * 1_000_000_000 + nsec
        return Frame(ts, self.place, addr[0], addr[2] == PACKET_OUTGOING, data)

    def close(self) -> None:
        self.sock.close()


def _packet_socket(netns_path: str | None) -> socket.socket:
    return netns.socket(netns_path, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))


class Taps(contextlib.AbstractContextManager):
    """Many taps read as one stream; closing it closes every capture socket."""

    def __init__(self, places: list[Place], expression: str | None):
        program = bpf.compile_filter(expression) if expression else None
        self.taps: list[Tap] = []
        try:
            for place in places:
                self.taps.append(Tap(place, program))
        except BaseException:
            self.close()
            raise

    def frames(self, timeout: float) -> Iterator[Frame]:
        """Frames as they come, until `timeout` seconds pass without one (None: never)."""
        while True:
            ready, _, _ = select.select(self.taps, [], [], timeout)
            if not ready:
                return
            batch = []  # what is queued now, read before any is handed on (and printed)
            for tap in ready:
                for _ in range(BATCH):  # bounded: a flood must not keep --count/--duration from being checked
                    frame = tap.read()
                    if frame is None:
                        break
                    batch.append(frame)
            yield from sorted(batch, key=lambda f: f.ts_ns)

    def drain(self) -> list[Frame]:
        """What the sockets hold now, in arrival order."""
        out = []
        for tap in self.taps:
            while (frame := tap.read()) is not None:
                out.append(frame)
        return sorted(out, key=lambda f: f.ts_ns)

    def close(self) -> None:
        # Closing a packet socket waits for an RCU grace period (~5 ms); side by side, the
        # waits overlap instead of adding up over dozens of pods.
        closers = [threading.Thread(target=tap.close) for tap in self.taps]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
        self.taps = []

    def __exit__(self, *exc) -> None:
        self.close()


def capture(
    places: list[Place],
    expression: str | None,
    count: int | None,
    duration: float | None,
    on_frame,
    writer=None,
) -> int:
    """Capture on the places (merged into one stream) until `count` packets or `duration`
    seconds; returns the count. Interrupts (Ctrl-C, SIGTERM turned into one by the caller)
    end it cleanly, and the capture sockets are closed whatever happens."""
    seen = 0
    deadline = time.monotonic() + duration if duration else None
    with Taps(places, expression) as taps, contextlib.suppress(KeyboardInterrupt):
        while count is None or seen < count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            for frame in taps.frames(min(left, 0.5) if left is not None else 0.5):
                seen += 1
                if writer:
                    writer.write(frame.ts_ns, frame.data)
                on_frame(frame)
                if count is not None and seen >= count:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
    return seen
