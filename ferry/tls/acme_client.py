"""A thin adapter over the ``acme`` library (RFC 8555): account, order, challenges, chain.

    FerryError
    ├── UnavailableError
    │   └── AcmeUnavailable   the CA cannot be reached, or did not answer in time
    └── ValidationError
        └── AcmeRefused       the CA answered no (rejected name, failed challenge, bad CSR)

Every call blocks (``requests`` underneath): the control plane runs them in a
worker thread. Foreign exceptions become these two, with a sentence a user
understands (``ferry certs check`` shows it). The account key is a JWK the
caller seals and stores (``AcmeAccount.key_json``); nothing here writes disk.

TLS-ALPN-01 (RFC 8737) is no longer in the ``acme`` library: the challenge
certificate is made here with ``cryptography`` (``alpn_challenge_cert``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from josepy.b64 import b64encode
from josepy.jwk import JWK, JWKRSA

from ferry.errors import UnavailableError, ValidationError

__all__ = [
    "AcmeAccount",
    "AcmeClient",
    "AcmeOrder",
    "AcmeRefused",
    "AcmeUnavailable",
    "IdentifierChallenges",
    "alpn_challenge_cert",
    "new_private_key_pem",
]

#: id-pe-acmeIdentifier (RFC 8737 §3): the critical extension of the challenge cert.
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
HTTP01, DNS01, TLSALPN01 = "http-01", "dns-01", "tls-alpn-01"
#: Seconds between two polls of an authorization or an order.
POLL_SECONDS = 0.2


class AcmeUnavailable(UnavailableError):
    """The ACME CA cannot be reached or timed out; retrying later may work."""


class AcmeRefused(ValidationError):
    """The ACME CA refused: the sentence says what it refused and why. ``kind``: the
    problem type's last part (``rejectedIdentifier``, ``accountDoesNotExist``…), if any."""

    kind: str = ""


@dataclass(frozen=True)
class AcmeAccount:
    """An ACME account: its JWK (private: seal before storing) and its URI at the CA."""

    key_json: str
    uri: str

    def __repr__(self) -> str:
        return f"AcmeAccount(uri={self.uri!r})"


@dataclass(frozen=True)
class IdentifierChallenges:
    """What the edges must publish for one name of an order, per challenge type offered.

    ``http01``: (token, key authorization); ``dns01``: (TXT name, TXT value);
    ``alpn01``: the key authorization the TLS-ALPN-01 certificate must carry.
    """

    hostname: str
    http01: tuple[str, str] | None = None
    dns01: tuple[str, str] | None = None
    alpn01: str | None = None


@dataclass
class AcmeOrder:
    """An order in flight: its names, their challenges, and the library's handles."""

    hostnames: tuple[str, ...]
    challenges: list[IdentifierChallenges]
    csr_pem: bytes
    resource: Any = field(repr=False)
    bodies: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)


def new_private_key_pem() -> bytes:
    """A fresh ECDSA P-256 key for a certificate, PEM (PKCS#8, unencrypted)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def alpn_challenge_cert(hostname: str, key_authorization: str) -> tuple[bytes, bytes]:
    """The self-signed TLS-ALPN-01 certificate for ``hostname``: (cert PEM, key PEM).

    It names only ``hostname`` and carries the SHA-256 of the key authorization
    in the critical acmeIdentifier extension (an ASN.1 OCTET STRING), RFC 8737 §3.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = _dt.datetime.now(_dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME challenge")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _EmptyResponse(challenges.ChallengeResponse):
    """The ``{}`` every challenge is answered with (RFC 8555 §7.5.1)."""

    def to_partial_json(self) -> dict[str, Any]:
        return {}

    def __bool__(self) -> bool:
        # The library sends an empty payload (a POST-as-GET, which answers nothing) for a
        # falsy object, and a map without fields is falsy.
        return True


def _problem(error: messages.Error) -> str:
    kind = (error.typ or "").rsplit(":", 1)[-1]
    detail = error.detail or error.description or kind
    return f"{detail} ({kind})" if kind and kind not in detail else detail


def _translate(exc: Exception, what: str, directory: str) -> Exception:
    """A Ferry exception for a foreign one raised while doing ``what``."""
    if isinstance(exc, requests.exceptions.RequestException):
        return AcmeUnavailable(
            f"the ACME CA at {directory} cannot be reached while {what}: {type(exc).__name__}",
            hint="the old certificate stays in use; Ferry retries with backoff",
        )
    if isinstance(exc, errors.TimeoutError):
        return AcmeUnavailable(
            f"the ACME CA did not finish {what} in time",
            hint="Ferry retries with backoff; `ferry certs check` shows the next attempt",
        )
    if isinstance(exc, errors.ValidationError):
        reasons = []
        for authzr in exc.failed_authzrs:
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    reasons.append(
                        f"{authzr.body.identifier.value}: {chall.chall.typ} failed: "
                        f"{_problem(chall.error)}"
                    )
        return AcmeRefused(
            "the ACME CA could not validate the name: " + "; ".join(reasons),
            hint="make the name resolve to the cluster's edges (see `ferry certs check`)",
        )
    if isinstance(exc, errors.IssuanceError):
        return AcmeRefused(f"the ACME CA refused to issue: {_problem(exc.error)}")
    if isinstance(exc, messages.Error):
        refused = AcmeRefused(f"the ACME CA refused {what}: {_problem(exc)}")
        refused.kind = (exc.typ or "").rsplit(":", 1)[-1]
        return refused
    return AcmeRefused(f"the ACME exchange failed while {what}: {exc}")


class AcmeClient:
    """One CA directory and one account. Not thread-safe: one order at a time."""

    def __init__(
        self,
        directory_url: str,
        account: AcmeAccount | None = None,
        *,
        ca_bundle: str | None = None,
        email: str | None = None,
        timeout: int = 20,
    ) -> None:
        """``ca_bundle``: a PEM file to trust for the CA's own HTTPS (Pebble's);
        ``None`` uses the system trust store (Let's Encrypt)."""
        self.directory_url = directory_url
        self.account = account
        self._ca_bundle = ca_bundle
        self._email = email
        self._timeout = timeout
        self._client: client.ClientV2 | None = None
        self._key: JWK | None = None

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (errors.Error, requests.exceptions.RequestException) as exc:
            raise _translate(exc, what, self.directory_url) from exc
        except ValueError as exc:  # JSON from something that is not an ACME server
            raise AcmeUnavailable(
                f"{self.directory_url} did not answer as an ACME CA while {what}: {exc}"
            ) from exc

    def connect(self) -> AcmeAccount:
        """Fetch the directory and register the account if there is none yet; the
        account (new or given). Raises ``AcmeUnavailable``/``AcmeRefused``."""
        if self.account is not None:
            key = JWK.json_loads(self.account.key_json)
        else:
            key = JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        net = client.ClientNetwork(key, user_agent="ferry", timeout=self._timeout)
        if self._ca_bundle:
            net.verify_ssl = self._ca_bundle  # type: ignore[assignment]  # requests takes a path
        directory = self._call("reading its directory", client.ClientV2.get_directory,
                               self.directory_url, net)  # fmt: skip
        acme = client.ClientV2(directory, net)
        if self.account is None:
            registration = messages.NewRegistration.from_data(
                email=self._email, terms_of_service_agreed=True
            )
            regr = self._call("registering an account", acme.new_account, registration)
            self.account = AcmeAccount(key.json_dumps(), regr.uri)
        else:
            net.account = messages.RegistrationResource(
                uri=self.account.uri, body=messages.Registration()
            )
        self._client, self._key = acme, key
        return self.account

    def _acme(self) -> tuple[client.ClientV2, JWK]:
        if self._client is None or self._key is None:
            self.connect()
        assert self._client is not None and self._key is not None
        return self._client, self._key

    def new_order(self, hostnames: Sequence[str], key_pem: bytes) -> AcmeOrder:
        """Order a certificate for ``hostnames`` with the key ``key_pem``; the challenges
        each name offers. Raises ``AcmeUnavailable``/``AcmeRefused`` (e.g. a name the
        CA's policy forbids)."""
        acme, key = self._acme()
        csr_pem = crypto_util.make_csr(key_pem, list(hostnames))
        orderr = self._call("creating the order", acme.new_order, csr_pem)
        thumbprint = b64encode(key.thumbprint()).decode()
        order = AcmeOrder(tuple(hostnames), [], csr_pem, orderr)
        for authzr in orderr.authorizations:
            name = authzr.body.identifier.value
            if authzr.body.wildcard:
                name = "*." + name
            http01 = dns01 = alpn01 = None
            for challb in authzr.body.challenges:
                chall = challb.chall
                if isinstance(chall, challenges.HTTP01):
                    http01 = (chall.encode("token"), chall.validation(key))
                    order.bodies[(name, HTTP01)] = challb
                elif isinstance(chall, challenges.DNS01):
                    base = name.removeprefix("*.")
                    dns01 = (chall.validation_domain_name(base), chall.validation(key))
                    order.bodies[(name, DNS01)] = challb
                elif (
                    isinstance(chall, challenges.UnrecognizedChallenge)
                    and chall.jobj.get("type") == TLSALPN01
                ):
                    alpn01 = f"{chall.jobj['token']}.{thumbprint}"
                    order.bodies[(name, TLSALPN01)] = challb
            order.challenges.append(IdentifierChallenges(name, http01, dns01, alpn01))
        return order

    def answer(self, order: AcmeOrder, hostname: str, kind: str) -> None:
        """Tell the CA the ``kind`` challenge of ``hostname`` is ready (published)."""
        acme, _key = self._acme()
        challb = order.bodies.get((hostname, kind))
        if challb is None:
            raise AcmeRefused(f"the ACME CA offered no {kind} challenge for {hostname}")
        # Posted directly, not with ``answer_challenge``: that one insists on a "Link: up"
        # header some CAs (Pebble 2.4) leave out; the answer's body is all we need.
        new_nonce = acme.directory["newNonce"]
        self._call(
            f"answering the {kind} challenge",
            lambda: acme.net.post(challb.uri, _EmptyResponse(), new_nonce_url=new_nonce),
        )

    def finish(self, order: AcmeOrder, timeout: float = 60.0) -> bytes:
        """Wait for the validations, finalize with the CSR and fetch the full chain (PEM,
        leaf first). Raises ``AcmeRefused`` naming each failed challenge and why,
        ``AcmeUnavailable`` when it takes longer than ``timeout`` seconds.

        Polls every ``POLL_SECONDS`` (the library's own loops wait a whole second
        between polls, which doubles the time a fast CA takes)."""
        acme, _key = self._acme()
        deadline = time.monotonic() + timeout
        orderr = order.resource

        def authorizations() -> Any:
            done = []
            for authzr in orderr.authorizations:
                while True:
                    authzr, _response = acme.poll(authzr)
                    if authzr.body.status != messages.STATUS_PENDING:
                        break
                    if time.monotonic() > deadline:
                        raise errors.TimeoutError()
                    time.sleep(POLL_SECONDS)
                done.append(authzr)
            failed = [a for a in done if a.body.status != messages.STATUS_VALID]
            if failed:
                raise errors.ValidationError(failed)
            return orderr.update(authorizations=done)

        orderr = self._call("validating the challenges", authorizations)
        new_nonce = acme.directory["newNonce"]

        def issue() -> str:
            acme.begin_finalization(orderr)
            while time.monotonic() < deadline:
                body = messages.Order.from_json(
                    acme.net.post(orderr.uri, None, new_nonce_url=new_nonce).json()
                )
                if body.status == messages.STATUS_INVALID:
                    if body.error is not None:
                        raise errors.IssuanceError(body.error)
                    raise errors.Error("the order became invalid without a reason")
                if body.status == messages.STATUS_VALID and body.certificate is not None:
                    chain = acme.net.post(body.certificate, None, new_nonce_url=new_nonce)
                    return str(chain.text)
                time.sleep(POLL_SECONDS)
            raise errors.TimeoutError()

        chain: str = self._call("issuing the certificate", issue)
        if "BEGIN CERTIFICATE" not in chain:
            raise AcmeRefused("the ACME CA finalized the order without a certificate")
        return chain.encode()
