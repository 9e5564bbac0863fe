"""A tiny server for proxy tests, run inside an endpoint namespace: every TCP/UDP/SCTP port it
listens on answers each connection or datagram with "<name> <peer ip>:<peer port>", so a test
sees which endpoint answered and which source address it saw. Standard library only."""

import socket
import sys
import threading


def answer(name: str, peer) -> bytes:
    ip = peer[0].removeprefix("::ffff:")  # an IPv4 peer of the dual-stack socket
    return f"{name} {f'[{ip}]' if ':' in ip else ip}:{peer[1]}\n".encode()


def dual_stack(kind: int, proto: int = 0) -> socket.socket:
    """One socket for IPv4 and IPv6 (dual-stack tests reach the same endpoints over both)."""
    try:
        s = socket.socket(socket.AF_INET6, kind, proto)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return s
    except OSError:  # no IPv6 in this kernel or namespace
        return socket.socket(socket.AF_INET, kind, proto)


def serve_stream(name: str, port: int, proto: int) -> None:
    s = dual_stack(socket.SOCK_STREAM, proto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if s.family == socket.AF_INET6 else "0.0.0.0", port))
    s.listen(128)
    while True:
        conn, peer = s.accept()
        try:
            conn.sendall(answer(name, peer))
        finally:
            conn.close()


def serve_udp(name: str, port: int) -> None:
    s = dual_stack(socket.SOCK_DGRAM)
    s.bind(("::" if s.family == socket.AF_INET6 else "0.0.0.0", port))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(answer(name, peer), peer)


def main() -> None:
    name = sys.argv[1]
    threads = []
    for spec in sys.argv[2:]:  # tcp:8080 udp:5353 sctp:9999
        proto, _, port = spec.partition(":")
        if proto == "udp":
            target, args = serve_udp, (name, int(port))
        else:
            target, args = serve_stream, (name, int(port), socket.IPPROTO_SCTP if proto == "sctp" else 0)
        threads.append(threading.Thread(target=target, args=args, daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
