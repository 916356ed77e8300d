"""The edge's side of TLS: which certificate a handshake gets, and the ``ssl`` contexts for it.

Pure part: ``match_certificate`` picks, for an SNI name, the challenge
certificate of a pending TLS-ALPN-01 validation, else the exact name's
certificate, else the one-label ``*.`` wildcard's (``*.example.com`` covers
``a.example.com``, not ``example.com`` nor ``a.b.example.com``). Unknown
names — and handshakes without SNI, which name no app — get nothing.

Adapter: ``EdgeTlsContexts`` wraps a ``Callable[[], EdgeTls]`` into the
``ssl.SSLContext`` an asyncio server is given (one per kind of listener:
HTTPS, and raw TCP ports with the ``tls`` handler, which offer no ALPN). Its SNI callback switches
each handshake to the context of the chosen certificate, or refuses it with
a fatal ``unrecognized_name`` alert. Contexts are made once per certificate
and kept while the snapshot still holds it; a new snapshot only drops those
it no longer has. TLS 1.2 and 1.3 only; ALPN ``h2`` (when the edge can speak
it) and ``http/1.1``.

TLS-ALPN-01 (RFC 8737): Python's ``ssl`` does not show the client's ALPN
list to the SNI callback, so the listener's ``SSLObject`` peeks at the bytes
of the ClientHello before OpenSSL reads them (``ferry.tls.client_hello``). A
client offering ``acme-tls/1`` for a name with a pending challenge gets a
context whose only protocol is ``acme-tls/1`` and whose certificate is the
challenge's; every other client of that name gets its real certificate (a
renewal validated by TLS-ALPN-01 breaks nobody), or is refused when there is
none yet. Only when the offer cannot be read does the challenge win.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509

from ferry.tls.bundle import CertBundle, EdgeTls, wildcard_parent
from ferry.tls.client_hello import MAX_HELLO, offered_alpn

__all__ = [
    "ACME_TLS_ALPN",
    "EdgeTlsContexts",
    "Match",
    "bundle_from_pem",
    "load_bundle",
    "match_certificate",
    "merge_sources",
    "normalize_name",
    "static_source",
]

log = logging.getLogger(__name__)

ACME_TLS_ALPN = "acme-tls/1"
#: Server names whose context ``EdgeTlsContexts`` remembers per snapshot (then it starts over).
_NAMES_KEPT = 4096


def normalize_name(name: str | None) -> str | None:
    """SNI as the edge compares it: lower case, no trailing dot; None for none or empty."""
    if not name:
        return None
    name = name.strip().rstrip(".").lower()
    return name or None


@dataclass(frozen=True, slots=True)
class Match:
    """The certificate a handshake for ``name`` gets, and why (``key``: the table entry)."""

    kind: Literal["challenge", "exact", "wildcard"]
    key: str
    bundle: CertBundle


def match_certificate(
    tls: EdgeTls, server_name: str | None, *, challenges: bool = True
) -> Match | None:
    """The certificate for SNI ``server_name`` in ``tls``, or None (refuse the handshake). Pure.

    Order: a pending TLS-ALPN-01 challenge for the exact name (unless
    ``challenges`` is false: listeners other than 443, which ACME never
    validates), the exact name's certificate, the wildcard one label up.
    """
    name = normalize_name(server_name)
    if name is None:
        return None
    challenge = tls.alpn01.get(name) if challenges else None
    if challenge is not None:
        return Match("challenge", name, challenge)
    exact = tls.certificates.get(name)
    if exact is not None:
        return Match("exact", name, exact)
    key = wildcard_parent(name)
    wildcard = tls.certificates.get(key) if key else None
    return Match("wildcard", key, wildcard) if key and wildcard is not None else None


def static_source(tls: EdgeTls) -> Callable[[], EdgeTls]:
    """A source that always returns ``tls`` (the cluster's own certificate, tests)."""
    return lambda: tls


def merge_sources(*sources: Callable[[], EdgeTls]) -> Callable[[], EdgeTls]:
    """One source from several: a name in a later source overrides the same name earlier.

    Put defaults first (the cluster wildcard) and the control plane's feed
    after. The merged snapshot is remade only when one of the inputs returns
    a different object, so the contexts built from it stay cached; its
    ``version`` is the sum of the inputs' versions (it grows when one grows).
    """
    last: list[object] = []
    merged: list[EdgeTls] = [EdgeTls()]

    def current() -> EdgeTls:
        parts = [source() for source in sources]
        if len(last) == len(parts) and all(a is b for a, b in zip(last, parts, strict=True)):
            return merged[0]
        certificates: dict[str, CertBundle] = {}
        http01: dict[str, str] = {}
        alpn01: dict[str, CertBundle] = {}
        dns01: dict[str, tuple[str, ...]] = {}
        apps: dict[str, str] = {}
        for part in parts:
            certificates.update(part.certificates)
            apps.update(part.apps)
            http01.update(part.http01)
            alpn01.update(part.alpn01)
            for name, values in part.dns01.items():
                dns01[name] = tuple(dict.fromkeys((*dns01.get(name, ()), *values)))
        merged[0] = EdgeTls(
            version=sum(p.version for p in parts),
            certificates=certificates,
            http01=http01,
            alpn01=alpn01,
            dns01=dns01,
            apps=apps,
        )
        last[:] = parts
        return merged[0]

    return current


def bundle_from_pem(chain_pem: bytes, key_pem: bytes) -> CertBundle:
    """A ``CertBundle`` for a PEM chain (leaf first) and key; names from the leaf's SAN.

    Raises ``ValueError`` when the chain holds no certificate or the leaf names nothing.
    """
    leaf = x509.load_pem_x509_certificate(chain_pem)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if not names:
        raise ValueError("the certificate names no DNS name in its subjectAltName")
    return CertBundle(names, chain_pem, key_pem, leaf.not_valid_after_utc)


def server_context(bundle: CertBundle | None, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A server context: TLS 1.2-1.3, ``alpn``, and ``bundle``'s chain and key if given.

    One TLS 1.3 session ticket per handshake (OpenSSL's default is two; each
    costs the server about 15 µs and clients need one to resume). Raises
    ``ssl.SSLError`` for a chain and key that do not load or match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    # No renegotiation (TLS 1.2): a client-started one costs the server a handshake
    # and would have OpenSSL write in the middle of a read.
    context.options |= (
        ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    )
    context.num_tickets = 1
    context.set_alpn_protocols(list(alpn))
    if bundle is not None:
        load_bundle(context, bundle)
    return context


def load_bundle(context: ssl.SSLContext, bundle: CertBundle) -> None:
    """Make ``bundle`` the certificate of ``context`` (for handshakes started after).

    The key goes through an anonymous in-memory file, never the disk. Raises
    ``ssl.SSLError`` for a chain and key that do not load or match.
    """
    fd = os.memfd_create("ferry-cert", os.MFD_CLOEXEC)
    try:
        os.write(fd, bundle.chain_pem.rstrip(b"\n") + b"\n" + bundle.key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


class _AlertingSSLObject(ssl.SSLObject):
    """An ``SSLObject`` whose refused handshakes still send their alert, and that lets go
    of OpenSSL's connection as soon as the TLS session is closed.

    asyncio and uvloop drop the connection at the first ``SSLError`` of a
    handshake without sending what OpenSSL queued, so a client whose name
    was refused would see a bare EOF. When the SNI callback refused the
    name, the first failure is reported as "want read": the event loop then
    sends the queued ``unrecognized_name`` alert and waits; the client
    closes (or the handshake timeout does), and the next call fails for real.

    Once ``unwrap`` has completed (``close_notify`` sent and received), OpenSSL's
    connection (``SSL*`` and its buffers, tens of KB) is freed at once, not when the
    cyclic garbage collector next reaches the connection's objects (the edge's
    protocol objects form cycles): the next handshakes reuse that memory while it is
    still in the CPU's caches. Reading then finds no data; other methods raise
    ``ssl.SSLZeroReturnError`` (the event loop calls none: the connection is over).
    """

    refused_name = False
    alert_sent = False
    #: The ClientHello bytes seen so far; None once the SNI callback has run.
    hello: bytearray | None = None
    _incoming: ssl.MemoryBIO | None = None
    #: CPython's ``_ssl._SSLSocket`` (set by ``SSLObject._create``), then ``_CLOSED``.
    _sslobj: Any

    @classmethod
    def _create(  # CPython's private constructor (wrap_bio calls it): keep the BIO
        cls, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: object, **kwargs: object
    ) -> _AlertingSSLObject:
        obj: _AlertingSSLObject = super()._create(incoming, outgoing, *args, **kwargs)  # type: ignore[misc]
        obj._incoming = incoming
        obj.hello = bytearray()
        return obj

    def do_handshake(self) -> None:
        incoming = self._incoming
        if self.hello is not None and incoming is not None:
            if incoming.pending:
                # Peek: take what arrived and put it back, so OpenSSL reads the same bytes.
                data = incoming.read()
                with contextlib.suppress(ssl.SSLError):  # closed by the client: fails anyway
                    incoming.write(data)
                if len(self.hello) < MAX_HELLO:
                    self.hello += data
            elif not self.hello and not incoming.eof:
                # The event loop's first call, before the client wrote anything: OpenSSL
                # would only ask for more as well (and build its error message for it).
                raise ssl.SSLWantReadError("waiting for the ClientHello")
        try:
            self._sslobj.do_handshake()  # ssl.py's own frame spared
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            if not self.refused_name or self.alert_sent:
                raise
            self.alert_sent = True
            raise ssl.SSLWantReadError(
                "the alert is sent; waiting for the client to close"
            ) from exc

    def unwrap(self) -> None:
        """Close the TLS session: raises "want read" until the peer's ``close_notify``
        came; then frees OpenSSL's connection (see the class docstring)."""
        self._sslobj.shutdown()
        self._sslobj = _CLOSED
        self._incoming = None


class _ClosedSession:
    """What an ``_AlertingSSLObject`` holds once its session is closed: no data left to
    read, nothing more to close; anything else fails as on a closed session."""

    def read(self, size: int = 1024, buffer: object = None) -> bytes:
        return b""

    def pending(self) -> int:
        return 0

    def shutdown(self) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        raise ssl.SSLZeroReturnError(f"the TLS session is closed ({name})")


_CLOSED = _ClosedSession()


def _likely_default(tls: EdgeTls) -> CertBundle | None:
    """The certificate most handshakes will get: the first wildcard by name, else the
    first certificate; None when there is none."""
    names = sorted(tls.certificates, key=lambda name: (not name.startswith("*."), name))
    return tls.certificates[names[0]] if names else None


class EdgeTlsContexts:
    """The ``ssl.SSLContext`` for a TLS listener, following a ``Callable[[], EdgeTls]``.

    ``listener`` is the context to give ``loop.create_server(ssl=…)``; its
    SNI callback reads the source on every handshake (it must be cheap and
    return the same object while nothing changed). Event-loop thread only.
    ``alpn``: the protocols offered to ordinary clients, most preferred first.
    """

    def __init__(
        self,
        source: Callable[[], EdgeTls],
        *,
        alpn: tuple[str, ...] = ("h2", "http/1.1"),
        challenges: bool = True,
    ) -> None:
        """``challenges``: answer TLS-ALPN-01 validations (the 443 listener only)."""
        self.source = source
        self.alpn = alpn
        self.challenges = challenges
        self.listener = server_context(None, alpn)
        self.listener.sni_callback = self._on_server_name
        self.listener.sslobject_class = _AlertingSSLObject
        self._snapshot: EdgeTls | None = None
        self._contexts: dict[tuple[CertBundle, bool], ssl.SSLContext] = {}
        self._broken: set[CertBundle] = set()  # bundles that failed to load: logged once
        # SNI as sent -> the context chosen for it from ``_snapshot`` (none refused, none
        # with a pending challenge): most handshakes are a dict lookup.
        self._by_name: dict[str, ssl.SSLContext] = {}
        # The listener itself holds the certificate most handshakes get (a wildcard
        # of the source's first snapshot: the cluster's), so they need no switch of
        # context (~20 µs less each). Loaded once, before any handshake: every
        # connection starts with it, whatever the source returns later.
        try:
            self._listener_bundle = _likely_default(source())
            if self._listener_bundle is not None:
                load_bundle(self.listener, self._listener_bundle)
        except Exception:  # a source or a certificate failing now: switch contexts instead
            log.warning("no default certificate for the TLS listener", exc_info=True)
            self._listener_bundle = None  # context_for logs a broken certificate when chosen
        self.refused = 0  # handshakes refused for a name nobody has (or none)

    def context_for(
        self, server_name: str | None, offers: Callable[[], tuple[str, ...] | None] | None = None
    ) -> ssl.SSLContext | None:
        """The context a handshake for ``server_name`` switches to; None: refuse it.

        ``offers``: the protocols the client offers (None: unknown), asked only when the
        name has a pending challenge: a client that does not offer ``acme-tls/1`` then
        gets the name's certificate instead of the challenge's."""
        snapshot = self.source()
        if snapshot is not self._snapshot:
            self._forget_unused(snapshot)
            self._snapshot = snapshot
            self._by_name.clear()
        elif server_name is not None:
            known = self._by_name.get(server_name)
            if known is not None:  # the same answer as the last time, without the work
                return known
        challenges = self.challenges
        pending = challenges and normalize_name(server_name) in snapshot.alpn01
        if pending and offers is not None:
            offered = offers()
            challenges = offered is None or ACME_TLS_ALPN in offered
        found = match_certificate(snapshot, server_name, challenges=challenges)
        if found is None:
            return None
        challenge = found.kind == "challenge"
        key = (found.bundle, challenge)
        context = self._contexts.get(key)
        if context is None:
            if found.bundle in self._broken:
                return None
            alpn = (ACME_TLS_ALPN,) if challenge else self.alpn
            try:
                if not challenge and found.bundle == self._listener_bundle:
                    context = self.listener  # every handshake already holds it: no switch
                else:
                    context = server_context(found.bundle, alpn)
            except (ssl.SSLError, OSError, ValueError) as exc:
                self._broken.add(found.bundle)
                log.error("the certificate for %s cannot be loaded: %s", found.key, exc)
                return None
            self._contexts[key] = context
        if not pending and server_name is not None:  # a pending challenge: ask each time
            if len(self._by_name) >= _NAMES_KEPT:  # names under a wildcard are unbounded
                self._by_name.clear()
            self._by_name[server_name] = context
        return context

    def _forget_unused(self, snapshot: EdgeTls) -> None:
        kept: set[CertBundle] = {*snapshot.certificates.values(), *snapshot.alpn01.values()}
        for key in [k for k in self._contexts if k[0] not in kept]:
            del self._contexts[key]
        self._broken &= kept

    def _on_server_name(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        offers = None
        if isinstance(connection, _AlertingSSLObject) and connection.hello is not None:
            hello, connection.hello = connection.hello, None  # read: stop peeking

            def offers() -> tuple[str, ...] | None:  # parsed only for a pending challenge
                return offered_alpn(bytes(hello)) if hello else None

        try:
            context = self.context_for(server_name, offers)
        except Exception:  # the source is someone else's code: refuse this handshake only
            log.exception("choosing a certificate for %r failed", server_name)
            context = None
        if context is None:
            self.refused += 1
            if isinstance(connection, _AlertingSSLObject):
                connection.refused_name = True
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if context is not self.listener:  # connection: also the edge's TlsTransport
            connection.context = context
        return None

    def challenge_pending(self) -> bool:
        """Whether a TLS-ALPN-01 validation is pending for some name on this listener:
        its handshakes then need the ClientHello's ALPN (``_AlertingSSLObject``)."""
        return self.challenges and bool(self.source().alpn01)

    @property
    def cached(self) -> Mapping[tuple[CertBundle, bool], ssl.SSLContext]:
        """The contexts made so far (for tests: a new snapshot with the same bundles keeps them)."""
        return self._contexts
