"""The embedded cluster's own certificate authority (EC P-256), and the leaf certificates it signs.

``ClusterCa.load_or_create(directory)`` makes the CA once (``ca.pem`` and
``ca-key.pem``, the key 0600) and reuses it on every later start, so clients
that trust it keep trusting the cluster across ``ferry cluster down``/``up``.
``issue`` signs a short-lived leaf for a set of names (the cluster wildcard
``*.<domain>`` and ``<domain>`` for the edges). ``write_trust_bundle`` writes
the system CAs followed by the cluster CA, for ``ferry region exec`` clients.

Blocking file I/O; raises ``ConfigError`` when the stored CA cannot be read.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ferry.errors import ConfigError
from ferry.tls.bundle import CertBundle

__all__ = [
    "SYSTEM_CA_FILE",
    "ClusterCa",
    "new_key_pem",
    "self_signed",
    "write_private",
    "write_trust_bundle",
]

#: Debian's bundle of the system's trusted CAs.
SYSTEM_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")
_CA_YEARS = 10
_LEAF_DAYS = 90  # as an ACME CA would; the supervisor issues a fresh one on every start
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks a little behind
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def new_key_pem() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A new EC P-256 private key and its unencrypted PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (created 0600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _leaf_builder(
    names: tuple[str, ...], public: ec.EllipticCurvePublicKey, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )


def self_signed(names: tuple[str, ...], *, days: int = 7) -> CertBundle:
    """A self-signed leaf for ``names`` (tests, and challenge certificates built elsewhere)."""
    if not names:
        raise ValueError("a certificate needs at least one name")
    key, key_pem = new_key_pem()
    now = dt.datetime.now(dt.UTC)
    builder = _leaf_builder(names, key.public_key(), now, days).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    )
    cert = builder.sign(key, hashes.SHA256())
    return CertBundle(
        hostnames=names,
        chain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        not_after=cert.not_valid_after_utc,
    )


@dataclass(frozen=True)
class ClusterCa:
    """The CA certificate (PEM) and its private key. Never log ``key``."""

    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return f"ClusterCa(subject={self.certificate.subject.rfc4514_string()!r})"

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @classmethod
    def create(cls, name: str = "Ferry embedded cluster CA") -> ClusterCa:
        """A new self-signed CA valid for ten years (may sign leaves only: path length 0)."""
        key, _ = new_key_pem()
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ferry"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=365 * _CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _CA_KEY_USAGE,
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key)

    @classmethod
    def load_or_create(cls, directory: Path) -> ClusterCa:
        """The CA kept in ``directory`` (``ca.pem``, ``ca-key.pem``), made there if absent.

        Idempotent. Raises ``ConfigError`` when only one of the two files exists
        or they cannot be read (nothing is overwritten then).
        """
        cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
        if not cert_path.exists() and not key_path.exists():
            ca = cls.create()
            write_private(key_path, ca.key_pem())
            cert_path.write_bytes(ca.cert_pem)
            return ca
        try:
            cert_pem = cert_path.read_bytes()
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            x509.load_pem_x509_certificate(cert_pem)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"the cluster CA in {directory} cannot be read: {exc}",
                hint="restore ca.pem and ca-key.pem, or delete both to make a new CA "
                "(clients must then trust the new one)",
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"the cluster CA key in {key_path} is not an EC key")
        return cls(cert_pem, key)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def issue(self, names: tuple[str, ...], *, days: int = _LEAF_DAYS) -> CertBundle:
        """A new leaf for ``names`` (DNS names, ``*.`` wildcards or IP addresses), signed
        by this CA, with a new key; the chain is the leaf then the CA."""
        if not names:
            raise ValueError("a certificate needs at least one name")
        key, key_pem = new_key_pem()
        ca_cert = self.certificate
        now = dt.datetime.now(dt.UTC)
        cert = (
            _leaf_builder(names, key.public_key(), now, days)
            .issuer_name(ca_cert.subject)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return CertBundle(
            hostnames=names,
            chain_pem=cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem,
            key_pem=key_pem,
            not_after=cert.not_valid_after_utc,
        )


def write_trust_bundle(path: Path, ca_pem: bytes, system: Path = SYSTEM_CA_FILE) -> Path:
    """Write the system's CAs (when present) followed by ``ca_pem`` to ``path``; returns it.

    Clients given this file (``SSL_CERT_FILE``, ``CURL_CA_BUNDLE`` …) trust both the
    public CAs and the cluster's.
    """
    system_pem = system.read_bytes() if system.is_file() else b""
    if system_pem and not system_pem.endswith(b"\n"):
        system_pem += b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(system_pem + ca_pem)
    os.replace(tmp, path)
    return path
