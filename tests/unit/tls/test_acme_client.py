"""The ACME adapter's own parts: the TLS-ALPN-01 certificate (RFC 8737) and the errors
users read when the CA is down or refuses."""

from __future__ import annotations

import hashlib
import socket

import pytest
from acme import messages
from cryptography import x509

from ferry.tls.acme_client import (
    ACME_IDENTIFIER_OID,
    AcmeClient,
    AcmeRefused,
    AcmeUnavailable,
    alpn_challenge_cert,
)


def test_the_alpn_challenge_certificate_names_the_host_and_carries_the_digest() -> None:
    cert_pem, key_pem = alpn_challenge_cert("www.example.com", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["www.example.com"]
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.critical
    digest = hashlib.sha256(b"token.thumbprint").digest()
    assert ext.value.value == b"\x04\x20" + digest  # DER OCTET STRING of 32 bytes
    assert b"PRIVATE KEY" in key_pem


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_ca_that_is_down_is_unavailable_with_a_sentence() -> None:
    url = f"https://127.0.0.1:{_closed_port()}/dir"
    with pytest.raises(AcmeUnavailable) as caught:
        AcmeClient(url, timeout=2).connect()
    assert f"the ACME CA at {url} cannot be reached while reading its directory" in str(
        caught.value
    )
    assert "old certificate stays in use" in str(caught.value)


def test_a_refusal_names_what_the_ca_said() -> None:
    client = AcmeClient("https://ca.example/dir")
    problem = messages.Error(
        typ="urn:ietf:params:acme:error:rejectedIdentifier",
        detail="Policy forbids issuing for name",
    )

    def refuse() -> None:
        raise problem

    with pytest.raises(AcmeRefused) as caught:
        client._call("creating the order", refuse)
    assert str(caught.value) == (
        "the ACME CA refused creating the order: Policy forbids issuing for name "
        "(rejectedIdentifier)"
    )
