"""TLS-ALPN-01 for real: Pebble validates against the edge's TLS listener, the edge then
serves the issued certificate over HTTPS, and other names keep working meanwhile."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from ferry.tls.acme_client import ACME_IDENTIFIER_OID

from .acme_world import DOMAIN, AcmeWorld, wait_for

NAME = "www.example.test"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AcmeWorld]:
    w = AcmeWorld(tmp_path, challenge="tls-alpn-01", https=True)
    try:
        yield w
    finally:
        w.close()


def _client(cadata: str | None, alpn: list[str]) -> ssl.SSLContext:
    if cadata is None:  # the challenge certificate is self-signed: look, do not verify
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=cadata)
    context.set_alpn_protocols(alpn)
    return context


def _get(port: int, name: str, context: ssl.SSLContext) -> tuple[bytes, x509.Certificate, str]:
    """GET / over a TLS connection to the edge for SNI ``name``: (the answer's head, the
    edge's certificate, the ALPN agreed)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        alpn = tls.selected_alpn_protocol() or ""
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.partition(b"\r\n\r\n")[0], x509.load_der_x509_certificate(der), alpn


def _handshake(port: int, name: str, context: ssl.SSLContext) -> tuple[x509.Certificate, str]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der), tls.selected_alpn_protocol() or ""


class PendingWatch:
    """While the edge publishes a TLS-ALPN-01 challenge for ``NAME``, shakes hands with it
    as the validator does, and as ordinary clients of ``NAME`` (verifying with ``root``,
    Pebble's root) and of another name do."""

    def __init__(self, world: AcmeWorld, root: str | None = None) -> None:
        self.world = world
        self.root = root
        self.cluster_ca = world.cluster_ca.cert_pem.decode()
        self.seen = 0
        self.challenge_certs: list[x509.Certificate] = []
        self.others: list[str] = []  # what an ordinary client of another name met
        #: what an ordinary client of NAME met, and whether NAME had a certificate then
        self.same_name: list[tuple[bool, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        edge = self.world.edge
        assert edge is not None
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            if NAME not in edge.tls().alpn01:
                time.sleep(0.002)
                continue
            self.seen += 1
            port = self.world.https_port
            try:
                cert, alpn = _handshake(port, NAME, _client(None, ["acme-tls/1"]))
                if alpn == "acme-tls/1":
                    self.challenge_certs.append(cert)
                head, _cert, _alpn = _get(
                    port, f"web.{DOMAIN}", _client(self.cluster_ca, ["http/1.1"])
                )
                self.others.append(head.split(b"\r\n", 1)[0].decode())
            except (OSError, ssl.SSLError) as exc:
                self.others.append(f"failed: {exc!r}")
            had_certificate = NAME in edge.tls().certificates
            try:
                head, _cert, _alpn = _get(port, NAME, _client(self.root, ["http/1.1"]))
                met = head.split(b"\r\n", 1)[0].decode()
            except ssl.SSLError as exc:
                met = exc.reason or repr(exc)
            except OSError as exc:
                met = repr(exc)
            # a certificate that arrived meanwhile (issued: the challenge is gone too) makes
            # the sample one of neither state: keep only those the state did not change under
            if (NAME in edge.tls().certificates) == had_certificate:
                self.same_name.append((had_certificate, met))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_tls_alpn01_validated_on_the_edge_then_served_over_https(world: AcmeWorld) -> None:
    watch = PendingWatch(world)
    try:
        started = time.monotonic()
        world.admin.add_certificate("web", NAME)
        cert = world.issued(NAME)
        issued_after = time.monotonic() - started
    finally:
        watch.stop()
    assert cert["client_status"] == "Ready"
    assert world.edge is not None and world.edge.proxy is not None
    # Pebble validated on the edge's TLS listener, by ALPN acme-tls/1
    assert world.edge.proxy.tls_handshakes.get("acme-tls/1", 0) >= 1
    assert watch.seen, "the challenge was never seen on the edge"
    # what the validator met: a certificate naming only NAME, with the critical
    # acmeIdentifier extension (RFC 8737 §3)
    assert watch.challenge_certs, "no acme-tls/1 handshake while the challenge was pending"
    challenge = watch.challenge_certs[0]
    names = challenge.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [NAME]
    assert challenge.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID).critical
    # ordinary clients of other names were served as usual meanwhile; those of the name
    # itself were refused (it had no certificate yet), never shown the challenge's
    assert watch.others and all(line.startswith("HTTP/1.1 ") for line in watch.others), watch.others
    before_issue = {met for had_certificate, met in watch.same_name if not had_certificate}
    assert before_issue == {"TLSV1_UNRECOGNIZED_NAME"}, watch.same_name

    # the edge serves the issued certificate: it verifies against Pebble's root
    wait_for("the edge has the certificate", lambda: NAME in world.edge.tls().certificates)  # type: ignore[union-attr]
    root = world.pebble_root()
    for alpn in (["h2", "http/1.1"], ["http/1.1"]):
        leaf, agreed = _handshake(world.https_port, NAME, _client(root, alpn))
        assert agreed == alpn[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == [NAME]
    head, leaf, _ = _get(world.https_port, NAME, _client(root, ["http/1.1"]))
    assert head.startswith(b"HTTP/1.1 ")  # the edge answered (web has no machine here)
    assert b"fly-request-id" in head.lower()
    bundle = world.edge.tls().certificates[NAME]
    assert leaf == x509.load_pem_x509_certificates(bundle.chain_pem)[0]
    # a client offering acme-tls/1 now gets the real certificate, and no such protocol
    _leaf, agreed = _handshake(world.https_port, NAME, _client(root, ["acme-tls/1"]))
    assert agreed == ""
    # the cluster's own names are untouched; a name nobody has is refused
    _handshake(world.https_port, f"web.{DOMAIN}", _client(world.cluster_ca.cert_pem.decode(), []))
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        _handshake(world.https_port, "nobody.example.test", _client(root, []))
    print(f"\ntls-alpn-01: `certs add` -> issued in {issued_after:.2f}s")


def test_a_renewal_by_tls_alpn_01_keeps_serving_the_name_to_its_clients(
    tmp_path: Path,
) -> None:
    """Pebble issues 15 s certificates: renewed with a third left. While the renewal's
    challenge is pending, the validator gets the challenge and every ordinary client
    of the name its current certificate, verified (docs/certificates.md)."""
    world = AcmeWorld(tmp_path, validity=15, challenge="tls-alpn-01", https=True)
    try:
        world.admin.add_certificate("web", NAME)
        first = world.issued(NAME)
        root = world.pebble_root()
        watch = PendingWatch(world, root)
        try:
            wait_for(
                "a renewed certificate",
                lambda: (
                    world.admin.get_certificate("web", NAME)["expires_at"] != first["expires_at"]
                ),
                timeout=30,
            )
        finally:
            watch.stop()
        assert watch.challenge_certs, "no acme-tls/1 handshake while the renewal was pending"
        assert watch.same_name, "no ordinary client of the name during the renewal"
        for had_certificate, met in watch.same_name:  # verified against Pebble's root
            assert had_certificate and met.startswith("HTTP/1.1 "), watch.same_name
        assert all(line.startswith("HTTP/1.1 ") for line in watch.others), watch.others
        assert world.admin.get_certificate("web", NAME)["configured"] is True
    finally:
        world.close()
