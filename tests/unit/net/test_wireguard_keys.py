"""The host's WireGuard key: made once on the host, 0600, reused; interface names."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ferry.errors import NetworkError, ValidationError
from ferry.net.wireguard import ensure_key, interface_name, public_key


def test_the_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "wireguard" / "private.key"
    first = ensure_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert ensure_key(key_file) == first  # an agent restart keeps the identity
    private = base64.b64decode(key_file.read_text())
    assert first != key_file.read_text().strip()  # the public key, not the private one
    derived = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    assert base64.b64decode(first) == derived


def test_two_hosts_get_two_keys(tmp_path: Path) -> None:
    assert ensure_key(tmp_path / "a.key") != ensure_key(tmp_path / "b.key")


def test_a_damaged_key_file_is_reported_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "private.key"
    key_file.write_text("garbage\n")
    with pytest.raises(NetworkError, match="unreadable or not a key"):
        ensure_key(key_file)
    assert key_file.read_text() == "garbage\n"
    with pytest.raises(NetworkError) as caught:
        public_key(key_file)
    assert "garbage" not in str(caught.value)


def test_interface_names_are_short_unique_per_scope_and_host() -> None:
    assert interface_name("fy1a2b", 3) == "fy1a2bw3"
    assert interface_name("fy1a2b", 0xFFFF_FFFF) == "fy1a2bwffffffff"
    assert len(interface_name("fy1a2b", 0xFFFF_FFFF)) == 15
    assert interface_name("fy1a2b", 1) != interface_name("fy1a2c", 1)
    with pytest.raises(ValidationError, match="1-6 characters"):
        interface_name("toolongscope", 1)
    with pytest.raises(ValidationError, match="out of range"):
        interface_name("ferry", -1)
