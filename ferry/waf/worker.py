"""A WAF worker process: runs ``ModSecurityCore`` for the edge over a Unix socket.

Started by ``ferry.waf.workers`` as ``python -m ferry.waf.worker FD [RULE_FILES]``
(``RULE_FILES``: a JSON list of the four paths of ``RuleFiles``);
``FD`` is its end of a socket pair. Frames are a 4-byte big-endian length and a
``marshal``-encoded tuple (compact and fast for tuples of bytes, str and
int; both ends are Ferry's own code of the same Python). Requests, each
answered in order with ``(seq, ok, payload)``:

- ``("L", seq, key)``: compile the rule set; payload None, or the error.
- ``("Q", seq, key, txn, request_id, client_ip, client_port, server_ip, server_port,
  method, uri, version, headers, body)``: phases 1-2; payload the status.
- ``("F", seq, txn, response)``: phase 3 when ``response`` is
  ``(status, protocol, headers)``, then logging; payload
  ``(status, rule_ids, score)``.

A request naming an unknown transaction or failing in the engine is answered
with ``ok`` False and a message; the worker goes on. It exits when the edge
closes its end.
"""

from __future__ import annotations

import json
import marshal
import socket
import struct
import sys
from pathlib import Path

from libmodsecurity import Transaction

from ferry.waf.engine import ModSecurityCore, WafEngineError, WafRequest
from ferry.waf.rules import RuleFiles

__all__ = ["serve"]

_LENGTH = struct.Struct(">I")
_Open = dict[int, tuple[Transaction, int]]  # transaction handle -> (open transaction, status)
#: Open transactions kept; past this the oldest are dropped (their edge went away).
_MAX_OPEN = 4096
_CHUNK = 1 << 16


class _Frames:
    """Frames read from the edge's socket through one buffer: one ``recv`` per burst
    (frames pipelined by the edge arrive together) rather than two per frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def next(self) -> bytes | None:
        """The next frame's payload, or None when the edge closed its end."""
        buffer = self.buffer
        while True:
            if len(buffer) >= 4:
                end = 4 + _LENGTH.unpack_from(buffer)[0]
                if len(buffer) >= end:
                    frame = bytes(buffer[4:end])
                    del buffer[:end]
                    return frame
            try:
                chunk = self.sock.recv(_CHUNK)
            except OSError:
                return None
            if not chunk:
                return None
            buffer += chunk


def serve(sock: socket.socket, core: ModSecurityCore) -> None:
    """Answer frames on ``sock`` until it closes (blocking)."""
    open_txns: _Open = {}
    frames = _Frames(sock)
    while True:
        frame = frames.next()
        if frame is None:
            return
        message = marshal.loads(frame)
        seq = message[1]
        try:
            payload = _handle(core, open_txns, message)
            reply = (seq, True, payload)
        except WafEngineError as exc:
            reply = (seq, False, str(exc))
        except Exception as exc:  # the engine's own failures: answer, stay up
            reply = (seq, False, f"{type(exc).__name__}: {exc}")
        data = marshal.dumps(reply)  # type: ignore[arg-type]  # bytes, str, int only
        try:
            sock.sendall(_LENGTH.pack(len(data)) + data)
        except OSError:
            return  # the edge went away


def _handle(core: ModSecurityCore, open_txns: _Open, message: tuple[object, ...]) -> object:
    kind = message[0]
    if kind == "L":
        core.load(str(message[2]))
        return None
    if kind == "Q":
        (_, _, key, txn_id, rid, cip, cport, sip, sport, method, uri, version, headers, body) = (
            message
        )
        request = WafRequest(
            str(rid), (str(cip), int(cport)), (str(sip), int(sport)),  # type: ignore[call-overload]
            method, uri, str(version), headers, body,  # type: ignore[arg-type]
        )  # fmt: skip
        txn, status = core.request(str(key), request)
        if len(open_txns) >= _MAX_OPEN:
            del open_txns[next(iter(open_txns))]
        open_txns[int(txn_id)] = (txn, status)  # type: ignore[call-overload]
        return status
    if kind == "F":
        found = open_txns.pop(int(message[2]), None)  # type: ignore[call-overload]
        if found is None:
            raise WafEngineError(f"no open transaction {message[2]}")
        outcome = core.finish(found[0], found[1], message[3])  # type: ignore[arg-type]
        return (outcome.status, outcome.rule_ids, outcome.anomaly_score)
    raise WafEngineError(f"unknown request {kind!r}")


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[0]))
    files = None
    if len(argv) > 1:
        recommended, mapping, setup, rules = json.loads(argv[1])
        files = RuleFiles(Path(recommended), Path(mapping), Path(setup), Path(rules))
    try:
        serve(sock, ModSecurityCore(files))
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
