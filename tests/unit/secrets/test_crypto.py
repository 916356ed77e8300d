"""AES-GCM sealing: values open only with their key, app and name, and only unchanged."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from ferry.secrets import SecretsKey, WrongKeyError

VALUE = "postgres://user:hunter2@db.internal/app"


def test_a_sealed_value_opens_to_itself_and_shows_nothing_of_it() -> None:
    key = SecretsKey.generate()
    sealed = key.seal("web", "DATABASE_URL", VALUE)
    assert key.open("web", "DATABASE_URL", sealed) == VALUE
    assert VALUE.encode() not in sealed.ciphertext
    assert len(sealed.nonce) == 12
    assert sealed.key_id == key.id
    assert VALUE not in repr(sealed)
    assert key.export() not in repr(key) and key.id in repr(key)


def test_each_seal_uses_a_fresh_nonce_but_the_digest_follows_the_value() -> None:
    key = SecretsKey.generate()
    first, second = key.seal("web", "A", VALUE), key.seal("web", "A", VALUE)
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext
    assert first.digest == second.digest
    assert key.seal("web", "A", VALUE + "x").digest != first.digest
    assert len(first.digest) == 16


def test_the_digest_depends_on_the_key_so_the_store_cannot_be_brute_forced() -> None:
    one, other = SecretsKey.generate(), SecretsKey.generate()
    assert one.digest("web", "A", "1234") != other.digest("web", "A", "1234")


def test_a_ciphertext_moved_to_another_app_or_name_does_not_open() -> None:
    key = SecretsKey.generate()
    sealed = key.seal("web", "TOKEN", VALUE)
    for app, name in (("other", "TOKEN"), ("web", "OTHER")):
        with pytest.raises(WrongKeyError) as caught:
            key.open(app, name, sealed)
        assert VALUE not in str(caught.value)


def test_tampered_bytes_do_not_open() -> None:
    key = SecretsKey.generate()
    sealed = key.seal("web", "TOKEN", VALUE)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(WrongKeyError, match="changed"):
        key.open("web", "TOKEN", dataclasses.replace(sealed, ciphertext=flipped))
    with pytest.raises(WrongKeyError):
        key.open("web", "TOKEN", dataclasses.replace(sealed, nonce=b"\0" * 12))


def test_another_key_is_named_by_id_and_refused() -> None:
    key, other = SecretsKey.generate(), SecretsKey.generate()
    sealed = key.seal("web", "TOKEN", VALUE)
    with pytest.raises(WrongKeyError, match=key.id) as caught:
        other.open("web", "TOKEN", sealed)
    assert other.id in str(caught.value)
    # Even claiming the right key id, the other key's bytes cannot open it.
    with pytest.raises(WrongKeyError):
        other.open("web", "TOKEN", dataclasses.replace(sealed, key_id=other.id))


def test_keys_round_trip_as_base64_and_bad_text_is_refused_without_echo() -> None:
    key = SecretsKey.generate()
    again = SecretsKey.from_text(key.export() + "\n")
    assert again.id == key.id
    assert again.open("web", "A", key.seal("web", "A", VALUE)) == VALUE
    with pytest.raises(ValueError, match="not base64"):
        SecretsKey.from_text("not a key!")
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ValueError, match="32 bytes, not 16") as caught:
        SecretsKey.from_text(short)
    assert short not in str(caught.value)
