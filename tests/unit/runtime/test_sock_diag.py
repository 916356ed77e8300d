"""The netlink sock_diag request for listening TCP sockets and the parse of its answer,
on bytes laid out as the kernel's structs are (linux/inet_diag.h)."""

from __future__ import annotations

import socket
import struct

import pytest

from ferry.model.processes import ListenSocket
from ferry.runtime.sock_diag import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN,
    listen_request,
    parse_diag_answer,
)

TCP_ESTABLISHED = 1


def message(kind: int, body: bytes) -> bytes:
    data = struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body
    return data + bytes(-len(data) % 4)


def diag(family: int, state: int, address: str, port: int, inode: int) -> bytes:
    raw = socket.inet_pton(family, address).ljust(16, b"\0")
    sockid = port.to_bytes(2, "big") + bytes(2) + raw + bytes(16) + bytes(4) + bytes(8)
    head = struct.pack("=BBBB", family, state, 0, 0)
    return message(SOCK_DIAG_BY_FAMILY, head + sockid + struct.pack("=IIIII", 0, 0, 0, 0, inode))


def test_the_request_asks_a_dump_of_tcp_sockets_in_listen_only() -> None:
    request = listen_request(socket.AF_INET6, seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", request)
    assert (length, kind, seq) == (len(request), SOCK_DIAG_BY_FAMILY, 7)
    assert flags == NLM_F_REQUEST | NLM_F_DUMP
    family, protocol, _, _, states = struct.unpack_from("=BBBBI", request, 16)
    assert (family, protocol, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 1 << TCP_LISTEN)
    assert len(request) == 16 + 56  # nlmsghdr + inet_diag_req_v2


def test_an_answer_gives_each_listening_socket_by_inode_until_done() -> None:
    data = (
        diag(socket.AF_INET, TCP_LISTEN, "0.0.0.0", 8080, 501)
        + diag(socket.AF_INET6, TCP_LISTEN, "::1", 5432, 502)
        + diag(socket.AF_INET, TCP_ESTABLISHED, "10.0.0.1", 8080, 503)
    )
    found, done = parse_diag_answer(data)
    assert found == {
        501: ListenSocket(proto="tcp", address="0.0.0.0:8080"),
        502: ListenSocket(proto="tcp6", address="[::1]:5432"),
    }
    assert not done
    assert parse_diag_answer(message(NLMSG_DONE, struct.pack("=i", 0))) == ({}, True)


def test_a_netlink_error_or_a_truncated_message_raises() -> None:
    with pytest.raises(OSError, match="Operation not permitted"):
        parse_diag_answer(message(NLMSG_ERROR, struct.pack("=i", -1) + bytes(16)))
    with pytest.raises(ValueError, match="truncated"):
        parse_diag_answer(diag(socket.AF_INET, TCP_LISTEN, "0.0.0.0", 80, 1)[:40])
