"""The ALPN offer of a real ClientHello, and what a pending TLS-ALPN-01 challenge does to
the clients of its name: the validator gets the challenge, everyone else the real cert;
and the listener's sessions once closed."""

from __future__ import annotations

import contextlib
import ssl
import sys
from collections.abc import Callable

import pytest
from cryptography import x509

from ferry.tls.bundle import CertBundle, EdgeTls
from ferry.tls.ca import ClusterCa, self_signed
from ferry.tls.client_hello import offered_alpn
from ferry.tls.edge_tls import ACME_TLS_ALPN, EdgeTlsContexts, static_source


def client_hello(alpn: list[str] | None, name: str = "www.example.com") -> bytes:
    """The bytes Python's TLS client sends first (a real ClientHello)."""
    context = ssl.create_default_context()
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("alpn", [[ACME_TLS_ALPN], ["h2", "http/1.1"], ["http/1.1"], None], ids=str)
def test_the_offer_is_read_from_a_real_client_hello(alpn: list[str] | None) -> None:
    assert offered_alpn(client_hello(alpn)) == tuple(alpn or ())


def test_a_partial_or_foreign_hello_tells_nothing() -> None:
    hello = client_hello(["h2"])
    for cut in (0, 3, 5, 40, len(hello) - 1):
        assert offered_alpn(hello[:cut]) is None, cut
    assert offered_alpn(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") is None
    assert offered_alpn(hello + b"\x17\x03\x03") == ("h2",)  # later bytes are ignored
    # the same hello split over two TLS records (as a client may send it)
    body = hello[5:]
    split = b"".join(
        b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part for part in (body[:50], body[50:])
    )
    assert offered_alpn(split) == ("h2",)


def _peer(contexts: EdgeTlsContexts, name: str, alpn: list[str]) -> tuple[x509.Certificate, str]:
    """A whole handshake in memory through the listener's context: (certificate, ALPN)."""
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    client_ctx.set_alpn_protocols(alpn)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = contexts.listener.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if server.selected_alpn_protocol() is not None or not alpn:
            try:
                client.do_handshake()
                break
            except ssl.SSLWantReadError:
                continue
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der), client.selected_alpn_protocol() or ""


def _names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def test_during_a_renewal_by_tls_alpn_01_only_the_validator_meets_the_challenge() -> None:
    ca = ClusterCa.create()
    real = ca.issue(("www.example.com",))
    challenge: CertBundle = self_signed(("www.example.com",))
    tls = EdgeTls(
        version=1,
        certificates={"www.example.com": real},
        alpn01={"www.example.com": challenge, "new.example.com": self_signed(("new.example.com",))},
    )
    contexts = EdgeTlsContexts(lambda: tls)
    challenge_leaf = x509.load_pem_x509_certificate(challenge.chain_pem)
    real_leaf = x509.load_pem_x509_certificate(real.chain_pem)

    cert, alpn = _peer(contexts, "www.example.com", [ACME_TLS_ALPN])
    assert (cert, alpn) == (challenge_leaf, ACME_TLS_ALPN)
    for offer in (["h2", "http/1.1"], ["http/1.1"], []):
        cert, alpn = _peer(contexts, "www.example.com", offer)
        assert cert == real_leaf, offer
        assert alpn == (offer[0] if offer else "")
    # a first issuance: the validator gets the challenge, and nobody else gets anything
    cert, _ = _peer(contexts, "new.example.com", [ACME_TLS_ALPN])
    assert _names(cert) == ["new.example.com"]
    with pytest.raises(ssl.SSLError):
        _peer(contexts, "new.example.com", ["http/1.1"])


def test_a_challenge_added_after_a_name_was_served_still_reaches_only_the_validator() -> None:
    ca = ClusterCa.create()
    real = ca.issue(("www.example.com",))
    challenge: CertBundle = self_signed(("www.example.com",))
    holder = [EdgeTls(version=1, certificates={"www.example.com": real})]
    contexts = EdgeTlsContexts(lambda: holder[0])
    real_leaf = x509.load_pem_x509_certificate(real.chain_pem)
    for _ in range(2):  # the second handshake takes the name's remembered context
        assert _peer(contexts, "www.example.com", ["h2"])[0] == real_leaf
    holder[0] = EdgeTls(
        version=2,
        certificates={"www.example.com": real},
        alpn01={"www.example.com": challenge},
    )
    cert, alpn = _peer(contexts, "www.example.com", [ACME_TLS_ALPN])
    assert (cert, alpn) == (x509.load_pem_x509_certificate(challenge.chain_pem), ACME_TLS_ALPN)
    assert _peer(contexts, "www.example.com", ["h2"])[0] == real_leaf


def test_a_closed_session_lets_go_of_openssls_connection_at_once() -> None:
    ca = ClusterCa.create()
    contexts = EdgeTlsContexts(static_source(EdgeTls(certificates={"*.ferry.test": ca.issue(
        ("*.ferry.test",))})))  # fmt: skip
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="a.ferry.test")
    server = contexts.listener.wrap_bio(s_in, s_out, server_side=True)

    def pump(step: Callable[[ssl.SSLObject], object]) -> None:
        for _ in range(6):
            for side in (client, server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    step(side)
            s_in.write(c_out.read())
            c_in.write(s_out.read())

    pump(lambda side: side.do_handshake())
    client.write(b"hello")
    s_in.write(c_out.read())
    assert server.read(100) == b"hello"
    openssl = server._sslobj  # type: ignore[attr-defined]
    with pytest.raises(ssl.SSLWantReadError):  # close_notify sent, the client's awaited
        server.unwrap()
    assert server._sslobj is openssl  # type: ignore[attr-defined]
    pump(lambda side: side.unwrap())
    assert server._sslobj is not openssl  # type: ignore[attr-defined]
    assert sys.getrefcount(openssl) == 2  # this test's name and the call's argument: no one else
    assert server.read(100) == b""  # what the event loop may still ask: nothing more to read
    assert server.pending() == 0
    with pytest.raises(ssl.SSLZeroReturnError):
        server.write(b"late")
