"""The cluster CA: made once with a private key file, reused, and signing leaves clients verify."""

from __future__ import annotations

import contextlib
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from ferry.errors import ConfigError
from ferry.tls.ca import ClusterCa, write_trust_bundle
from ferry.tls.cluster_certs import edge_tls_from_files, prepare_cluster_tls, trust_environment


def test_the_ca_is_made_once_key_private_and_reused(tmp_path: Path) -> None:
    first = ClusterCa.load_or_create(tmp_path / "tls")
    key = tmp_path / "tls" / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = ClusterCa.load_or_create(tmp_path / "tls")
    assert again.cert_pem == first.cert_pem
    assert "BEGIN PRIVATE KEY" not in repr(again)


def test_a_half_missing_ca_is_an_error_not_a_new_ca(tmp_path: Path) -> None:
    ClusterCa.load_or_create(tmp_path)
    (tmp_path / "ca-key.pem").unlink()
    with pytest.raises(ConfigError, match="cannot be read"):
        ClusterCa.load_or_create(tmp_path)
    assert (tmp_path / "ca.pem").exists()  # nothing overwritten


def test_leaves_verify_against_the_ca_for_their_names(tmp_path: Path) -> None:
    ca = ClusterCa.create()
    leaf = ca.issue(("*.ferry.test", "ferry.test"))
    cert = x509.load_pem_x509_certificate(leaf.chain_pem)
    assert cert.issuer == ca.certificate.subject
    (tmp_path / "leaf.pem").write_bytes(leaf.chain_pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    for name in ("web.ferry.test", "ferry.test"):
        assert _handshake(server, client, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, client, "a.b.ferry.test")


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> bool:
    """A handshake over memory BIOs; True when done, raises what the client refuses."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        try:
            c.do_handshake()
            s.do_handshake()
            return True
        except ssl.SSLWantReadError:
            continue
    return False


def test_cluster_files_trust_bundle_and_environment(tmp_path: Path) -> None:
    system = tmp_path / "system.pem"
    system.write_text("-----SYSTEM-----")
    files = prepare_cluster_tls(tmp_path, "ferry.test")
    assert stat.S_IMODE(files.edge_key.stat().st_mode) == 0o600
    tls = edge_tls_from_files(files.edge_cert, files.edge_key)
    assert set(tls.certificates) == {"*.ferry.test", "ferry.test"}
    bundle = write_trust_bundle(tmp_path / "b.pem", files.ca.read_bytes(), system)
    assert bundle.read_bytes() == b"-----SYSTEM-----\n" + files.ca.read_bytes()
    env = trust_environment(tmp_path)
    assert env["SSL_CERT_FILE"] == env["CURL_CA_BUNDLE"] == str(files.trust_bundle)
    assert files.ca.read_bytes() in files.trust_bundle.read_bytes()
    assert trust_environment(tmp_path / "nothing") == {}
    # a second `cluster up` keeps the CA
    assert prepare_cluster_tls(tmp_path, "ferry.test").ca.read_bytes() == files.ca.read_bytes()


def test_an_unusable_certificate_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("nope")
    with pytest.raises(ConfigError, match=r"c\.pem"):
        edge_tls_from_files(tmp_path / "c.pem", tmp_path / "k.pem")
