"""The embedded cluster's TLS files: its CA, the edges' wildcard certificate, the trust bundle.

``prepare_cluster_tls`` runs at every ``ferry cluster up`` (in the supervisor):
it keeps the CA made the first time, issues a fresh ``*.<domain>`` +
``<domain>`` certificate for the edges, and writes the bundle that
``ferry region exec`` hands its commands. ``edge_tls_from_files`` is how an
edge turns the certificate files it is given into its default ``EdgeTls``.

Layout under ``<home>/tls``: ``ca.pem``, ``ca-key.pem`` (0600), ``edge.pem``
(leaf then CA), ``edge-key.pem`` (0600), ``trust-bundle.pem`` (system CAs
then the cluster CA). Blocking file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigError
from ferry.tls.bundle import EdgeTls
from ferry.tls.ca import ClusterCa, write_private, write_trust_bundle
from ferry.tls.edge_tls import bundle_from_pem

__all__ = [
    "ClusterTlsFiles",
    "cluster_tls_files",
    "edge_tls_from_files",
    "prepare_cluster_tls",
    "trust_environment",
]


@dataclass(frozen=True)
class ClusterTlsFiles:
    """Where the cluster's TLS files are (they may not exist yet)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def edge_cert(self) -> Path:
        return self.directory / "edge.pem"

    @property
    def edge_key(self) -> Path:
        return self.directory / "edge-key.pem"

    @property
    def trust_bundle(self) -> Path:
        return self.directory / "trust-bundle.pem"


def cluster_tls_files(home: Path) -> ClusterTlsFiles:
    return ClusterTlsFiles(home / "tls")


def prepare_cluster_tls(home: Path, domain: str) -> ClusterTlsFiles:
    """Make (or reuse) the CA, issue the edges' certificate for ``*.<domain>`` and
    ``<domain>``, write the trust bundle; returns the paths. Idempotent apart from
    the new leaf. Raises ``ConfigError`` when a stored CA cannot be read."""
    files = cluster_tls_files(home)
    ca = ClusterCa.load_or_create(files.directory)
    leaf = ca.issue((f"*.{domain}", domain))
    files.edge_cert.write_bytes(leaf.chain_pem)
    write_private(files.edge_key, leaf.key_pem)
    write_trust_bundle(files.trust_bundle, ca.cert_pem)
    return files


def edge_tls_from_files(cert: Path, key: Path) -> EdgeTls:
    """The ``EdgeTls`` serving one certificate (PEM chain, leaf first) for every name in
    its subjectAltName. Raises ``ConfigError`` naming the file that cannot be used."""
    try:
        bundle = bundle_from_pem(cert.read_bytes(), key.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"the edge's certificate {cert} (key {key}) cannot be used: {exc}",
            hint="give a PEM certificate chain and its key; `ferry cluster up` writes both",
        ) from exc
    return EdgeTls(version=1, certificates={name: bundle for name in bundle.hostnames})


def trust_environment(home: Path) -> dict[str, str]:
    """Variables that make common clients (curl, OpenSSL, Python requests/httpx, Node)
    trust the cluster CA as well as the system's; empty when the cluster has no CA.

    Writes the trust bundle if the CA exists and the bundle does not.
    """
    files = cluster_tls_files(home)
    if not files.ca.is_file():
        return {}
    if not files.trust_bundle.is_file():
        write_trust_bundle(files.trust_bundle, files.ca.read_bytes())
    bundle = str(files.trust_bundle)
    return {
        "SSL_CERT_FILE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": str(files.ca),
    }
