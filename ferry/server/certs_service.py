"""Certificates by ACME on the control plane: add, show, check, remove; obtain and renew.

The user-facing calls validate and store; ``CertLoop`` (``certs_loop``: level-triggered,
like the liveness and autoscaler loops) asks ``ferry.tls.renewal`` what each certificate
needs and runs one ACME order at a time in a worker thread. An order publishes
its challenges through the store (the edges' ``/v1/edges/{region}/tls`` feed),
waits until the edges that follow the feed have them, answers the CA and
stores the chain with its key sealed by the control plane's secrets key. A
failed renewal changes nothing an edge serves: the old certificate stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ferry.errors import FerryError, NotFoundError
from ferry.secrets import SealedValue, SecretsKey
from ferry.server.certs_loop import EdgeAcks
from ferry.server.clock import Clock
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore
from ferry.store.certs_base import AcmeAccountRow, CertRow, CertUpdate
from ferry.tls.acme_client import (
    DNS01,
    HTTP01,
    TLSALPN01,
    AcmeAccount,
    AcmeClient,
    AcmeOrder,
    AcmeRefused,
    alpn_challenge_cert,
    new_private_key_pem,
)
from ferry.tls.bundle import CertBundle, EdgeTls
from ferry.tls.certs_names import check_hostname
from ferry.tls.renewal import Action, CertState, Decision, RenewalPolicy, decide, retry_at

__all__ = ["CertService", "CertSettings", "reseal_certificate_keys", "sealed_key_ids"]

log = logging.getLogger("ferry.server.certs")


@dataclass(frozen=True)
class CertSettings:
    """The control plane's ACME settings.

    ``directory_url``: the CA (Let's Encrypt's in production; Pebble's in the embedded
    cluster); empty: certificates are stored but never ordered. ``ca_bundle``: a PEM to
    trust for the CA's own HTTPS. ``edge_addresses``: where host names must point.
    ``resolve``: host name -> its addresses (the check's DNS lookup).
    ``challenge``: the challenge answered for plain names (``http-01`` or ``tls-alpn-01``);
    wildcards always use ``dns-01``.
    """

    directory_url: str = ""
    ca_bundle: str | None = None
    email: str | None = None
    cluster_domain: str = ""
    edge_addresses: tuple[str, ...] = ()
    resolve: Callable[[str], list[str]] | None = None
    challenge: str = HTTP01
    policy: RenewalPolicy = field(default_factory=RenewalPolicy)
    edge_wait_seconds: float = 10.0
    order_timeout: float = 60.0


def _state(row: CertRow) -> CertState:
    return CertState(
        row.hostname, row.status, row.not_before, row.not_after,
        row.failures, row.next_attempt, row.last_error,
    )  # fmt: skip


def _sealed(fields: tuple[bytes, bytes, str, str]) -> SealedValue:
    return SealedValue(*fields)


class CertService:
    """Thread-safe; blocking. One ACME order at a time (``_ordering``)."""

    def __init__(
        self, store: StateStore, clock: Clock, key: SecretsKey, settings: CertSettings
    ) -> None:
        self.store = store
        self.clock = clock
        self.key = key
        self.settings = settings
        self.acks = EdgeAcks()
        #: Woken by every certificate write: the edges' feed long-polls on it.
        self.changes = ChangeNotifier()
        self._ordering = threading.Lock()
        self._alpn: dict[tuple[str, str], CertBundle] = {}
        self._opened: dict[tuple[str, int], bytes] = {}

    # -- the users' calls ---------------------------------------------------------------
    def add(self, app_name: str, hostname: str) -> CertRow:
        """Store a pending certificate; the loop orders it. ``ValidationError`` for a bad
        name, ``ConflictError`` for a taken one, ``NotFoundError`` for an unknown app."""
        name = check_hostname(hostname, self.settings.cluster_domain)
        self.store.get_app(app_name)
        row = self.store.add_certificate(app_name, name, at=self.clock.now())
        self.changes.notify()
        return row

    def get(self, app_name: str, hostname: str) -> CertRow:
        """The app's certificate for ``hostname``; ``NotFoundError`` (also when another
        app holds it: nothing about other apps leaks)."""
        self.store.get_app(app_name)
        name = hostname.strip().lower().removesuffix(".")
        try:
            row = self.store.get_certificate(name)
        except NotFoundError:
            row = None
        if row is None or row.app_name != app_name:
            raise NotFoundError(
                f"app {app_name} has no certificate for {name}",
                hint=f"add one with `ferry certs add {name} -a {app_name}`",
            )
        return row

    def list_for(self, app_name: str) -> list[CertRow]:
        self.store.get_app(app_name)
        return self.store.list_certificates(app_name)

    def remove(self, app_name: str, hostname: str) -> None:
        row = self.get(app_name, hostname)
        self.store.remove_certificate(app_name, row.hostname)
        self.changes.notify()

    def dns_check(self, hostname: str) -> tuple[list[str], str]:
        """(addresses the name resolves to, a sentence on whether it points at the edges)."""
        edges = self.settings.edge_addresses
        if hostname.startswith("*."):
            probe = "_acme-challenge." + hostname[2:]
            return [], (
                f"{hostname} is validated by DNS-01: the cluster's DNS answers TXT {probe}; "
                "delegate that name to the cluster's DNS"
            )
        if self.settings.resolve is None:
            return [], "DNS not checked (no resolver configured)"
        try:
            found = sorted(set(self.settings.resolve(hostname)))
        except OSError as exc:
            found, error = [], str(exc)
        else:
            error = ""
        want = ", ".join(edges) or "the cluster's edges"
        if not found:
            return (
                [],
                f"{hostname} does not resolve{f' ({error})' if error else ''}: point it at {want}",
            )
        if edges and not set(found) & set(edges):
            return found, (
                f"{hostname} resolves to {', '.join(found)}, not to the cluster's edges "
                f"({want}): point an A record at them"
            )
        return found, f"{hostname} resolves to the cluster's edges ({', '.join(found)})"

    def check(self, app_name: str, hostname: str) -> tuple[CertRow, list[str], str]:
        """Re-check DNS and the order now: (row after, addresses, why it is or is not ready).

        A certificate that is not issued, or due for renewal, or given up, is ordered
        at once (the backoff and a give-up are reset: the user asked)."""
        row = self.get(app_name, hostname)
        addresses, dns_reason = self.dns_check(row.hostname)
        if not self.settings.directory_url:
            return row, addresses, f"no ACME CA is configured on the control plane; {dns_reason}"
        now = self.clock.now()
        decision = decide(_state(row), now, self.settings.policy)
        if row.status == "failed" or decision.action is not Action.WAIT or row.failures:
            if row.status == "issued":
                decision = Decision(row.hostname, Action.RENEW, "renewal asked by check")
            else:
                decision = Decision(row.hostname, Action.ORDER, "order asked by check")
            reason = self.act(decision, row)
            row = self.store.get_certificate(row.hostname)
        else:
            reason = decision.reason
        return row, addresses, f"{reason}; {dns_reason}"

    # -- the loop's work -----------------------------------------------------------------
    def run_once(self) -> str:
        """One cycle: decide for every certificate, act on each (orders one at a time);
        one line with each certificate's reason."""
        if not self.settings.directory_url:
            return "no ACME directory configured: certificates are not ordered"
        rows = self.store.list_certificates()
        if not rows:
            return "no certificates"
        now = self.clock.now()
        reasons = []
        for row in rows:
            decision = decide(_state(row), now, self.settings.policy)
            reasons.append(
                self.act(decision, row) if decision.action is not Action.WAIT else decision.reason
            )
        return "; ".join(reasons)

    def act(self, decision: Decision, row: CertRow) -> str:
        """Carry out ``decision`` for ``row``; the reason line afterwards."""
        if decision.action is Action.WAIT:
            return decision.reason
        if decision.action is Action.GIVE_UP:
            self._update(row.hostname, CertUpdate(status="failed", challenges={}))
            return decision.reason
        with self._ordering:
            # Another caller (the loop, or a `check`) may have finished an order meanwhile.
            try:
                fresh = self.store.get_certificate(row.hostname)
            except NotFoundError:
                return f"{row.hostname}: removed"
            if fresh.version != row.version and fresh.status == "issued":
                again = decide(_state(fresh), self.clock.now(), self.settings.policy)
                if again.action is Action.WAIT:
                    return again.reason
            row = fresh
            try:
                self._obtain(row)
            except FerryError as exc:
                failures = row.failures + 1
                change = CertUpdate(
                    status="pending" if row.status == "failed" else None,
                    last_error=exc.message,
                    failures=failures,
                    next_attempt=retry_at(failures, self.clock.now(), self.settings.policy),
                    challenges={},
                )
                try:
                    self._update(row.hostname, change)
                except NotFoundError:
                    return f"{row.hostname}: removed while its order ran"
                log.warning("certificate %s: %s", row.hostname, exc.message)
                kept = " (the current certificate stays in use)" if row.status == "issued" else ""
                return f"{row.hostname}: {decision.action.value} failed{kept}: {exc.message}"
        return f"{row.hostname}: certificate issued ({decision.action.value})"

    def _update(self, hostname: str, change: CertUpdate) -> CertRow:
        row = self.store.update_certificate(hostname, change, at=self.clock.now())
        self.changes.notify()
        return row

    def _client(self, *, fresh: bool = False) -> AcmeClient:
        """A connected client; ``fresh``: register a new account (the CA forgot ours)."""
        url = self.settings.directory_url
        stored = None if fresh else self.store.get_acme_account(url)
        account = None
        if stored is not None:
            account = AcmeAccount(
                self.key.open("acme-account", url, _sealed(stored.key)), stored.uri
            )
        acme = AcmeClient(
            url, account, ca_bundle=self.settings.ca_bundle, email=self.settings.email
        )
        registered = acme.connect()
        if stored is None:
            sealed = self.key.seal("acme-account", url, registered.key_json)
            fields = (sealed.ciphertext, sealed.nonce, sealed.key_id, sealed.digest)
            self.store.save_acme_account(
                AcmeAccountRow(url, fields, registered.uri, self.clock.now())
            )
        return acme

    def _obtain(self, row: CertRow) -> None:
        acme = self._client()
        key_pem = new_private_key_pem()
        try:
            order = acme.new_order([row.hostname], key_pem)
        except AcmeRefused as exc:
            if exc.kind != "accountDoesNotExist":
                raise
            # A CA that lost its accounts (Pebble keeps them in memory): register again.
            acme = self._client(fresh=True)
            order = acme.new_order([row.hostname], key_pem)
        kind, published = self._challenges(order)
        updated = self._update(row.hostname, CertUpdate(challenges=published))
        self._await_edges(updated.version)
        for ident in order.challenges:
            acme.answer(order, ident.hostname, kind)
        chain = acme.finish(order, self.settings.order_timeout)
        leaf = x509.load_pem_x509_certificates(chain)[0]
        sealed = self.key.seal(f"certificate/{row.app_name}", row.hostname, key_pem.decode())
        self._update(
            row.hostname,
            CertUpdate(
                status="issued",
                chain_pem=chain,
                key=(sealed.ciphertext, sealed.nonce, sealed.key_id, sealed.digest),
                not_before=leaf.not_valid_before_utc,
                not_after=leaf.not_valid_after_utc,
                last_error="",
                failures=0,
                clear_next_attempt=True,
                challenges={},
            ),
        )

    def _challenges(self, order: AcmeOrder) -> tuple[str, dict[str, Any]]:
        """The challenge type to answer and what the edges publish for the order."""
        http01: dict[str, str] = {}
        alpn01: dict[str, str] = {}
        dns01: dict[str, list[str]] = {}
        wildcard = any(h.startswith("*.") for h in order.hostnames)
        kind = DNS01 if wildcard else self.settings.challenge
        for ident in order.challenges:
            if kind == DNS01 and ident.dns01 is not None:
                dns01.setdefault(ident.dns01[0], []).append(ident.dns01[1])
            if not wildcard and ident.http01 is not None:
                http01[ident.http01[0]] = ident.http01[1]
            if not wildcard and ident.alpn01 is not None:
                alpn01[ident.hostname] = ident.alpn01
        offered = {HTTP01: bool(http01), TLSALPN01: bool(alpn01)}
        if not wildcard and not offered[kind]:
            kind = HTTP01 if offered[HTTP01] else TLSALPN01
        return kind, {"http01": http01, "alpn01": alpn01, "dns01": dns01}

    def _await_edges(self, version: int) -> None:
        """Wait (bounded) until every edge that follows the feed has ``version``."""
        deadline = time.monotonic() + self.settings.edge_wait_seconds
        while self.acks.lagging(version) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- the edges' feed -------------------------------------------------------------------
    def edge_snapshot(self) -> EdgeTls:
        """Everything the edges serve: issued certificates (keys opened), challenges."""
        version = self.store.certificates_version()
        rows = self.store.list_certificates()
        certificates: dict[str, CertBundle] = {}
        http01: dict[str, str] = {}
        alpn01: dict[str, CertBundle] = {}
        dns01: dict[str, tuple[str, ...]] = {}
        apps = {row.hostname: row.app_name for row in rows}
        for row in rows:
            if row.status == "issued" and row.key is not None and row.not_after is not None:
                certificates[row.hostname] = CertBundle(
                    (row.hostname,), row.chain_pem, self._open_key(row), row.not_after
                )
            challenges: Mapping[str, Any] = row.challenges
            http01.update(challenges.get("http01", {}))
            for name, values in challenges.get("dns01", {}).items():
                dns01[name] = tuple(values)
            for host, keyauth in challenges.get("alpn01", {}).items():
                alpn01[host] = self._alpn_bundle(host, keyauth)
        return EdgeTls(version, certificates, http01, alpn01, dns01, apps)

    def _open_key(self, row: CertRow) -> bytes:
        cache = (row.hostname, row.version)
        opened = self._opened.get(cache)
        if opened is None:
            assert row.key is not None
            scope = f"certificate/{row.app_name}"
            opened = self.key.open(scope, row.hostname, _sealed(row.key)).encode()
            self._opened = {k: v for k, v in self._opened.items() if k[0] != row.hostname}
            self._opened[cache] = opened
        return opened

    def _alpn_bundle(self, hostname: str, keyauth: str) -> CertBundle:
        bundle = self._alpn.get((hostname, keyauth))
        if bundle is None:
            cert_pem, key_pem = alpn_challenge_cert(hostname, keyauth)
            leaf = x509.load_pem_x509_certificate(cert_pem)
            bundle = CertBundle((hostname,), cert_pem, key_pem, leaf.not_valid_after_utc)
            if len(self._alpn) > 1000:
                self._alpn.clear()
            self._alpn[(hostname, keyauth)] = bundle
        return bundle


def sealed_key_ids(store: StateStore) -> dict[str, int]:
    """How many values each key id sealed: app secrets, certificate and account keys."""
    counts = dict(store.secret_key_ids())
    for key_id, count in store.cert_key_ids().items():
        counts[key_id] = counts.get(key_id, 0) + count
    return counts


def reseal_certificate_keys(store: StateStore, old: SecretsKey, new: SecretsKey) -> int:
    """Re-encrypt every certificate and ACME account key with ``new`` (key rotation), in one
    transaction; how many. ``WrongKeyError`` (nothing changed) if one does not open."""

    def reseal(
        scope: str, name: str, fields: tuple[bytes, bytes, str, str]
    ) -> tuple[bytes, bytes, str, str]:
        fresh = new.seal(scope, name, old.open(scope, name, _sealed(fields)))
        return fresh.ciphertext, fresh.nonce, fresh.key_id, fresh.digest

    return store.reseal_cert_keys(reseal)
