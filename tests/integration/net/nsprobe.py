"""Tiny servers and probes run inside the lab's namespaces (``ip netns exec NS python nsprobe.py``).

Standalone on purpose (stdlib only): it runs as a separate process in
another network namespace, so it imports nothing of Ferry.

    serve --name N [--tcp ADDR:PORT]... [--udp ADDR:PORT]... [--log FILE]
        TCP: answer every connection with "N\\n" and close; UDP: append
        "SOURCE PAYLOAD" to FILE and echo the payload. Prints "ready" once bound.
    connect ADDR PORT [--source S] [--timeout T]  -> open:<greeting> | refused | timeout
    udp ADDR PORT PAYLOAD [--source S] [--timeout T]  -> reply | timeout (| sent, timeout 0)
    rr ADDR PORT COUNT  -> round-trip microseconds, one per line, to an echo server
    echo ADDR:PORT  -> a TCP echo server for ``rr`` (prints "ready")

``--source`` binds with IP_FREEBIND, so a probe can claim an address its
namespace does not have: how a machine would spoof.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

IP_FREEBIND = 15
IPV6_FREEBIND = 78


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _socket(kind: socket.SocketKind, address: str, source: str | None) -> socket.socket:
    family = _family(address)
    sock = socket.socket(family, kind)
    if source:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        if "%" in source:  # a link-local address: bind it on its interface
            address_part, _, device = source.partition("%")
            sock.bind((address_part, 0, 0, socket.if_nametoindex(device)))
        else:
            sock.bind((source, 0))
    return sock


def serve(args: argparse.Namespace) -> None:
    log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
    threads = []
    for endpoint in args.tcp:
        host, port = _split(endpoint)
        sock = socket.socket(_family(host), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _family(host) == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(64)
        threads.append(threading.Thread(target=_tcp_loop, args=(sock, args.name), daemon=True))
    for endpoint in args.udp:
        host, port = _split(endpoint)
        sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        sock.bind((host, port))
        threads.append(threading.Thread(target=_udp_loop, args=(sock, log), daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join()


def _tcp_loop(sock: socket.socket, name: str) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(f"{name}\n".encode())


def _udp_loop(sock: socket.socket, log: object) -> None:
    while True:
        data, peer = sock.recvfrom(2048)
        if log is not None:
            log.write(f"{peer[0]} {data.decode(errors='replace')}\n")  # type: ignore[attr-defined]
        sock.sendto(data, peer)


def connect(args: argparse.Namespace) -> str:
    sock = _socket(socket.SOCK_STREAM, args.address, args.source)
    sock.settimeout(args.timeout)
    try:
        sock.connect((args.address, args.port))
        greeting = sock.recv(256).decode().strip()
        return f"open:{greeting}"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error:{exc.strerror}"
    finally:
        sock.close()


def udp(args: argparse.Namespace) -> str:
    sock = _socket(socket.SOCK_DGRAM, args.address, args.source)
    sock.settimeout(args.timeout)
    try:
        sock.sendto(args.payload.encode(), (args.address, args.port))
        if args.timeout == 0:
            return "sent"
        sock.recvfrom(2048)
        return "reply"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error:{exc.strerror}"
    finally:
        sock.close()


def echo(args: argparse.Namespace) -> None:
    host, port = _split(args.endpoint)
    server = socket.socket(_family(host), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(4)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)


def rr(args: argparse.Namespace) -> None:
    sock = socket.create_connection((args.address, args.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(args.count):
        start = time.perf_counter_ns()
        sock.sendall(b"x")
        sock.recv(64)
        times.append((time.perf_counter_ns() - start) // 1000)
    sock.close()
    print("\n".join(str(t) for t in times))


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--name", required=True)
    p.add_argument("--tcp", action="append", default=[])
    p.add_argument("--udp", action="append", default=[])
    p.add_argument("--log")
    for name in ("connect", "udp"):
        p = sub.add_parser(name)
        p.add_argument("address")
        p.add_argument("port", type=int)
        if name == "udp":
            p.add_argument("payload")
        p.add_argument("--source")
        p.add_argument("--timeout", type=float, default=0.5)
    p = sub.add_parser("echo")
    p.add_argument("endpoint")
    p = sub.add_parser("rr")
    p.add_argument("address")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    elif args.command == "connect":
        print(connect(args))
    elif args.command == "udp":
        print(udp(args))
    elif args.command == "echo":
        echo(args)
    else:
        rr(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
