"""The ALPN protocols a TLS ClientHello offers, read from the raw bytes a client sent.

Python's ``ssl`` shows the SNI callback the name a client asks for but not the
protocols it offers, and the edge must tell the two kinds of clients of a name
apart while a TLS-ALPN-01 validation is pending (RFC 8737): the ACME validator
(offering only ``acme-tls/1``) gets the challenge certificate, everyone else the
name's real certificate. ``offered_alpn`` is pure: the edge gives it the bytes it
peeked from the connection before OpenSSL read them (``ferry.tls.edge_tls``).
"""

from __future__ import annotations

__all__ = ["offered_alpn"]

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_ALPN_EXTENSION = 16
#: A ClientHello longer than this is not waited for (real ones are 0.2 to 2 KB).
MAX_HELLO = 16384


def _handshake_bytes(data: bytes) -> bytes | None:
    """The handshake-layer bytes of the TLS records at the start of ``data`` (a
    ClientHello may span several records); None when ``data`` is not TLS handshake."""
    out = bytearray()
    at = 0
    while at + 5 <= len(data):
        if data[at] != _HANDSHAKE:
            return None
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        out += data[at + 5 : at + 5 + length]
        at += 5 + length
    return bytes(out)


def offered_alpn(data: bytes) -> tuple[str, ...] | None:
    """The ALPN protocol names the ClientHello at the start of ``data`` offers, in order:
    ``()`` when it offers none; None when ``data`` is not (yet) a whole ClientHello or is
    malformed (the caller then cannot tell what the client offers)."""
    hello = _handshake_bytes(data[:MAX_HELLO])
    if hello is None or len(hello) < 4 or hello[0] != _CLIENT_HELLO:
        return None
    end = 4 + int.from_bytes(hello[1:4], "big")
    if len(hello) < end:
        return None  # more records to come
    try:
        at = 4 + 2 + 32  # version, random
        at += 1 + hello[at]  # session id
        at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
        at += 1 + hello[at]  # compression methods
        if at >= end:
            return ()  # no extensions at all
        ext_end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
        at += 2
        while at + 4 <= min(ext_end, end):
            kind = int.from_bytes(hello[at : at + 2], "big")
            size = int.from_bytes(hello[at + 2 : at + 4], "big")
            at += 4
            if kind == _ALPN_EXTENSION:
                body = hello[at : at + size]
                names: list[str] = []
                pos = 2
                while pos < len(body):
                    length = body[pos]
                    names.append(body[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
                    pos += 1 + length
                return tuple(names)
            at += size
    except IndexError:
        return None
    return ()
