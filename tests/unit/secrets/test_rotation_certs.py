"""Key rotation re-encrypts certificate keys too: after it, the plane opens them with the
new key (and would refuse to start with the old one)."""

from __future__ import annotations

from pathlib import Path

from ferry.model import App, Organization
from ferry.secrets import SealedValue, SecretsKey
from ferry.secrets.keys import open_secrets_key
from ferry.server.certs_service import sealed_key_ids
from ferry.server.clock import SystemClock
from ferry.server.secrets_rotation import rotate_secrets_key
from ferry.store import SqliteStore
from ferry.store.certs_base import CertUpdate

KEY_PEM = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"


def test_rotation_reseals_certificate_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server_dir = home / "server"
    store = SqliteStore(server_dir / "state.db")
    try:
        key = open_secrets_key(server_dir, {}, environ={}).key
        org = Organization(name="Personal", slug="personal")
        store.create_app(App(id="a1", name="web", organization=org, created_at=SystemClock().now()))
        store.add_certificate("web", "www.example.com", at=SystemClock().now())
        sealed = key.seal("certificate/web", "www.example.com", KEY_PEM)
        fields = (sealed.ciphertext, sealed.nonce, sealed.key_id, sealed.digest)
        store.update_certificate("www.example.com", CertUpdate(key=fields), at=SystemClock().now())
        assert sealed_key_ids(store) == {key.id: 1}
    finally:
        store.close()
    done = rotate_secrets_key(home, environ={})
    assert done.resealed == 1
    new = SecretsKey.from_text((server_dir / "secrets.key").read_text())
    store = SqliteStore(server_dir / "state.db")
    try:
        row = store.get_certificate("www.example.com")
        assert row.key is not None and row.key[2] == new.id
        assert new.open("certificate/web", "www.example.com", SealedValue(*row.key)) == KEY_PEM
        assert sealed_key_ids(store) == {new.id: 1}
    finally:
        store.close()
