"""The store's certificates: one app per host name, every write a new version, sealed keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ferry.errors import ConflictError, NotFoundError
from ferry.store import StateStore
from ferry.store.certs_base import AcmeAccountRow, CertUpdate

from .factories import T0, make_app

SEALED = (b"\x01cipher", b"n" * 12, "key-1", "digest-1")


def test_a_host_name_belongs_to_one_app_and_every_write_bumps_the_version(
    store: StateStore,
) -> None:
    store.create_app(make_app("web"))
    store.create_app(make_app("api"))
    start = store.certificates_version()
    row = store.add_certificate("web", "www.example.com", at=T0)
    assert (row.status, row.version, row.key) == ("pending", start + 1, None)
    with pytest.raises(ConflictError, match="another app"):
        store.add_certificate("api", "www.example.com", at=T0)
    with pytest.raises(NotFoundError):
        store.add_certificate("ghost", "x.example.com", at=T0)
    issued = store.update_certificate(
        "www.example.com",
        CertUpdate(status="issued", chain_pem=b"CHAIN", key=SEALED, not_before=T0,
                   not_after=T0 + timedelta(days=90), challenges={"http01": {"t": "k"}}),
        at=T0,
    )  # fmt: skip
    assert issued.version == start + 2 == store.certificates_version()
    assert (issued.key, issued.chain_pem, issued.challenges) == (
        SEALED,
        b"CHAIN",
        {"http01": {"t": "k"}},
    )
    assert store.cert_key_ids() == {"key-1": 1}
    assert [r.hostname for r in store.list_certificates("api")] == []
    with pytest.raises(NotFoundError):
        store.remove_certificate("api", "www.example.com")
    store.delete_app("web")
    assert store.list_certificates() == []
    assert store.certificates_version() > issued.version  # edges see the removal


def test_reseal_replaces_every_sealed_key_and_the_account_is_kept_sealed(
    store: StateStore,
) -> None:
    store.create_app(make_app("web"))
    store.add_certificate("web", "www.example.com", at=T0)
    store.update_certificate("www.example.com", CertUpdate(key=SEALED), at=T0)
    store.save_acme_account(AcmeAccountRow("https://ca/dir", SEALED, "https://ca/acct/1", T0))
    scopes: list[tuple[str, str]] = []

    def reseal(
        scope: str, name: str, sealed: tuple[bytes, bytes, str, str]
    ) -> tuple[bytes, bytes, str, str]:
        scopes.append((scope, name))
        return (b"new", b"m" * 12, "key-2", "digest-2")

    assert store.reseal_cert_keys(reseal) == 2
    assert sorted(scopes) == [
        ("acme-account", "https://ca/dir"),
        ("certificate/web", "www.example.com"),
    ]
    assert store.cert_key_ids() == {"key-2": 2}
    account = store.get_acme_account("https://ca/dir")
    assert account is not None and account.uri == "https://ca/acct/1" and account.key[2] == "key-2"
    assert store.get_acme_account("https://other/dir") is None
