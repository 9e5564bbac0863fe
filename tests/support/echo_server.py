"""A tiny server for proxy tests, run inside an endpoint namespace: every TCP/UDP/SCTP port it
listens on answers each connection or datagram with "<name> <peer ip>:<peer port>", so a test
sees which endpoint answered and which source address it saw. Standard library only."""

import socket
import sys
import threading


def answer(name: str, peer) -> bytes:
    return f"{name} {peer[0]}:{peer[1]}\n".encode()


def serve_stream(name: str, port: int, proto: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    while True:
        conn, peer = s.accept()
        try:
            conn.sendall(answer(name, peer))
        finally:
            conn.close()


def serve_udp(name: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
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
