"""A client for proxy tests, run inside a client namespace: makes N connections (or datagrams)
and prints one JSON list of outcomes: {"name": endpoint, "peer": "ip:port"} when served,
{"error": "refused" | "timeout" | …} otherwise. Standard library only, so it starts fast."""

import json
import socket
import sys
import urllib.error
import urllib.request


def once(proto: str, host: str, port: int, timeout: float, sport: int) -> dict:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, kind, socket.IPPROTO_SCTP if proto == "sctp" else 0)
    s.settimeout(timeout)
    try:
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
        s.connect((host, port))
        if proto == "udp":
            s.send(b"ping")
            data = s.recv(2048)
        else:
            data = b""
            while chunk := s.recv(2048):
                data += chunk
        name, peer = data.decode().split()
        return {"name": name, "peer": peer}
    except ConnectionRefusedError:
        return {"error": "refused"}
    except TimeoutError:
        return {"error": "timeout"}
    except OSError as e:
        return {"error": e.strerror or str(e)}
    finally:
        s.close()


def http(url: str, timeout: float) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}
    except OSError as e:
        return {"error": str(e)}


def main() -> None:
    args = sys.argv[1:]
    opts = {"timeout": 1.0, "sport": 0}
    while args and args[-1].startswith("--"):
        key, _, value = args.pop().partition("=")
        opts[key[2:]] = float(value) if key == "--timeout" else int(value)
    if args[0] == "http":
        print(json.dumps(http(args[1], opts["timeout"])))
        return
    proto, host, port, count = args[0], args[1], int(args[2]), int(args[3])
    print(json.dumps([once(proto, host, port, opts["timeout"], opts["sport"]) for _ in range(count)]))


if __name__ == "__main__":
    main()
