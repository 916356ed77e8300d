"""The control plane's ACME settings from its environment (``ferry server`` reads them).

FERRY_ACME_DIRECTORY     the CA's directory URL (Let's Encrypt:
                         https://acme-v02.api.letsencrypt.org/directory); unset: no
                         certificates are ordered
FERRY_ACME_CA_BUNDLE     PEM file trusted for the CA's own HTTPS (Pebble's cert)
FERRY_ACME_EMAIL         the account's contact address
FERRY_ACME_CHALLENGE     http-01 (default) or tls-alpn-01, for plain host names
FERRY_CLUSTER_DOMAIN     the cluster's own domain (refused as a custom host name)
FERRY_EDGE_ADDRESSES     comma-separated addresses host names must point at
FERRY_DNS_SERVER         HOST:PORT of the DNS server `certs check` asks (default:
                         the system resolver)
FERRY_ACME_RENEW_FRACTION  renew when this fraction of the lifetime is left (1/3)
FERRY_ACME_BACKOFF_SECONDS first retry delay after a failure (30)
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from datetime import timedelta

import dns.exception
import dns.resolver

from ferry.errors import ConfigError
from ferry.server.certs_service import CertSettings
from ferry.tls.acme_client import HTTP01, TLSALPN01
from ferry.tls.renewal import RenewalPolicy

__all__ = ["cert_settings_from_env", "resolver_for"]


def resolver_for(server: str | None) -> Callable[[str], list[str]]:
    """Host name -> IPv4 addresses, through ``server`` (``HOST:PORT``) or the system's."""
    if not server:

        def system(name: str) -> list[str]:
            try:
                infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise OSError(exc.strerror) from exc
            return [str(info[4][0]) for info in infos]

        return system
    host, _, port = server.rpartition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host or server]
    resolver.port = int(port) if port.isdigit() else 53
    resolver.lifetime = 3.0

    def ask(name: str) -> list[str]:
        try:
            return [r.to_text() for r in resolver.resolve(name, "A")]
        except dns.resolver.NXDOMAIN as exc:
            raise OSError("no such name") from exc
        except dns.exception.DNSException as exc:
            raise OSError(type(exc).__name__) from exc

    return ask


def cert_settings_from_env(env: Mapping[str, str]) -> CertSettings:
    """``CertSettings`` from ``env``; ``ConfigError`` naming a bad variable."""
    challenge = env.get("FERRY_ACME_CHALLENGE", HTTP01) or HTTP01
    if challenge not in (HTTP01, TLSALPN01):
        raise ConfigError(
            f"FERRY_ACME_CHALLENGE={challenge!r} is not a challenge Ferry answers",
            hint="use http-01 or tls-alpn-01 (wildcards always use dns-01)",
        )
    try:
        fraction = float(env.get("FERRY_ACME_RENEW_FRACTION") or 1 / 3)
        backoff = float(env.get("FERRY_ACME_BACKOFF_SECONDS") or 30)
    except ValueError as exc:
        raise ConfigError(f"an ACME setting is not a number: {exc}") from exc
    if not 0 < fraction < 1 or backoff <= 0:
        raise ConfigError("FERRY_ACME_RENEW_FRACTION must be in (0, 1), the backoff above 0")
    addresses = tuple(
        a.strip() for a in env.get("FERRY_EDGE_ADDRESSES", "").split(",") if a.strip()
    )
    return CertSettings(
        directory_url=env.get("FERRY_ACME_DIRECTORY", ""),
        ca_bundle=env.get("FERRY_ACME_CA_BUNDLE") or None,
        email=env.get("FERRY_ACME_EMAIL") or None,
        cluster_domain=env.get("FERRY_CLUSTER_DOMAIN", ""),
        edge_addresses=addresses,
        resolve=resolver_for(env.get("FERRY_DNS_SERVER")),
        challenge=challenge,
        policy=RenewalPolicy(renew_fraction=fraction, backoff_base=timedelta(seconds=backoff)),
    )
