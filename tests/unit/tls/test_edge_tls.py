"""Which certificate a handshake gets: exact, one-label wildcard, challenge, or none."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

import pytest

from ferry.tls.bundle import CertBundle, EdgeTls
from ferry.tls.ca import ClusterCa, self_signed
from ferry.tls.edge_tls import (
    ACME_TLS_ALPN,
    EdgeTlsContexts,
    bundle_from_pem,
    match_certificate,
    merge_sources,
    normalize_name,
    static_source,
)


def fake(*names: str) -> CertBundle:
    """A bundle for the pure selection (never loaded into a context)."""
    return CertBundle(
        names, b"chain:" + names[0].encode(), b"key", datetime(2030, 1, 1, tzinfo=UTC)
    )


EXACT = fake("api.example.com")
WILD = fake("*.example.com")
CHALLENGE = fake("new.example.com")
TLS = EdgeTls(
    version=3,
    certificates={"api.example.com": EXACT, "*.example.com": WILD, "*.com": fake("*.com")},
    alpn01={"new.example.com": CHALLENGE},
)


@pytest.mark.parametrize(
    ("sni", "kind", "key"),
    [
        ("api.example.com", "exact", "api.example.com"),
        ("API.Example.COM.", "exact", "api.example.com"),  # case and trailing dot
        ("www.example.com", "wildcard", "*.example.com"),
        ("new.example.com", "challenge", "new.example.com"),  # a pending TLS-ALPN-01 first
    ],
)
def test_sni_picks_challenge_then_exact_then_wildcard(sni: str, kind: str, key: str) -> None:
    match = match_certificate(TLS, sni)
    assert match is not None and (match.kind, match.key) == (kind, key)


@pytest.mark.parametrize(
    "sni",
    [
        "example.com",  # a wildcard does not cover its own parent
        "a.b.example.com",  # nor two labels down
        "example.org",
        "com",
        "",
        None,  # no SNI: no app is named, the handshake is refused
    ],
)
def test_names_nobody_has_get_nothing(sni: str | None) -> None:
    assert match_certificate(TLS, sni) is None


def test_listeners_acme_never_validates_ignore_challenges() -> None:
    match = match_certificate(TLS, "new.example.com", challenges=False)
    assert match is not None and (match.kind, match.key) == ("wildcard", "*.example.com")


def test_a_wildcard_never_covers_a_top_level_domain() -> None:
    # "*.com" is in the table, yet "example.com" is not matched by it
    assert match_certificate(TLS, "example.com") is None


def test_normalize_name() -> None:
    assert normalize_name(" Web.Ferry.Test. ") == "web.ferry.test"
    assert normalize_name(".") is None and normalize_name(None) is None


def test_merged_sources_let_later_names_win_and_stay_cached() -> None:
    first = EdgeTls(version=1, certificates={"a.test": fake("a.test"), "*.x.test": WILD})
    override = fake("a.test", "other")
    second = EdgeTls(version=2, certificates={"a.test": override}, http01={"tok": "auth"})
    holder = [second]
    merged = merge_sources(static_source(first), lambda: holder[0])
    snapshot = merged()
    assert snapshot.certificates["a.test"] is override
    assert snapshot.certificates["*.x.test"] is WILD
    assert snapshot.http01 == {"tok": "auth"} and snapshot.version == 3
    assert merged() is snapshot  # nothing changed: the same object, contexts stay cached
    holder[0] = EdgeTls(version=3)
    assert merged() is not snapshot and merged().certificates["a.test"].hostnames == ("a.test",)


def test_bundle_from_pem_takes_names_from_the_certificate() -> None:
    leaf = ClusterCa.create().issue(("*.ferry.test", "ferry.test"))
    bundle = bundle_from_pem(leaf.chain_pem, leaf.key_pem)
    assert bundle.hostnames == ("*.ferry.test", "ferry.test")
    assert bundle.not_after == leaf.not_after


def test_contexts_are_made_once_per_certificate_and_dropped_with_it() -> None:
    ca = ClusterCa.create()
    leaf = ca.issue(("*.ferry.test",))
    challenge = self_signed(("fresh.example.org",))
    holder = [EdgeTls(version=1, certificates={"*.ferry.test": leaf})]
    contexts = EdgeTlsContexts(lambda: holder[0], alpn=("http/1.1",))
    first = contexts.context_for("a.ferry.test")
    assert first is not None and first is contexts.context_for("b.ferry.test")
    assert first.minimum_version is ssl.TLSVersion.TLSv1_2
    assert first.maximum_version is ssl.TLSVersion.TLSv1_3
    # a new snapshot holding the same certificate keeps its context
    holder[0] = EdgeTls(version=2, certificates={"*.ferry.test": leaf}, alpn01={
        "fresh.example.org": challenge})  # fmt: skip
    assert contexts.context_for("a.ferry.test") is first
    assert contexts.context_for("fresh.example.org") is not None
    assert len(contexts.cached) == 2
    holder[0] = EdgeTls(version=3)
    assert contexts.context_for("a.ferry.test") is None
    assert len(contexts.cached) == 0


def test_a_certificate_that_does_not_load_refuses_only_its_names() -> None:
    ca = ClusterCa.create()
    good = ca.issue(("good.test",))
    other = ca.issue(("bad.test",))
    mismatched = CertBundle(("bad.test",), other.chain_pem, good.key_pem, other.not_after)
    contexts = EdgeTlsContexts(
        static_source(EdgeTls(certificates={"good.test": good, "bad.test": mismatched}))
    )
    assert contexts.context_for("bad.test") is None
    assert contexts.context_for("good.test") is not None


def test_acme_tls_alpn_constant_is_rfc_8737s() -> None:
    assert ACME_TLS_ALPN == "acme-tls/1"


def test_a_pending_challenge_is_what_sends_handshakes_through_the_event_loops_tls() -> None:
    leaf = ClusterCa.create().issue(("*.ferry.test",))
    holder = [EdgeTls(version=1, certificates={"*.ferry.test": leaf})]
    listener = EdgeTlsContexts(lambda: holder[0], alpn=("http/1.1",))
    raw_tcp = EdgeTlsContexts(lambda: holder[0], alpn=(), challenges=False)
    assert not listener.challenge_pending()
    holder[0] = EdgeTls(version=2, certificates={"*.ferry.test": leaf}, alpn01={
        "fresh.example.org": self_signed(("fresh.example.org",))})  # fmt: skip
    assert listener.challenge_pending()
    assert not raw_tcp.challenge_pending()  # it never answers validations
    # renegotiation (TLS 1.2) is refused on every listener
    assert listener.listener.options & ssl.OP_NO_RENEGOTIATION
