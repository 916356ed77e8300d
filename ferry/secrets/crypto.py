"""AES-256-GCM sealing of secret values, bound to their app and name.

Each value is sealed with a fresh random 96-bit nonce; the associated data is
``app \\0 name``, so a ciphertext copied to another app's or another name's row
does not open (``WrongKeyError``), and neither does one sealed with another key.
Every sealed value carries the id of its key (a one-way function of the key),
which is how the control plane tells, before serving anything, that the key it
was given is the one the store's values were sealed with.

The digest shown by ``ferry secrets list`` is an HMAC of the value under a key
derived from the secrets key: it tells two values apart without letting anyone
who reads the store test guesses against it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ferry.errors import FerryError

__all__ = ["KEY_BYTES", "NONCE_BYTES", "SealedValue", "SecretsKey", "WrongKeyError"]

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's native nonce size
_DIGEST_CHARS = 16


class WrongKeyError(FerryError):
    """A sealed value did not open: another key, another app or name, or tampered bytes.

    Its message never contains the value or the key.
    """

    status = 500


@dataclass(frozen=True)
class SealedValue:
    """What the store keeps of one value: nothing here reveals it."""

    ciphertext: bytes  # includes GCM's 16-byte tag
    nonce: bytes
    key_id: str
    digest: str


def _associated_data(app_name: str, name: str) -> bytes:
    return f"{app_name}\0{name}".encode()


class SecretsKey:
    """The control plane's 256-bit secrets key. Immutable; thread-safe.

    ``repr`` and ``str`` show only the key id.
    """

    __slots__ = ("_aead", "_digest_key", "_raw", "id")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ValueError(f"a secrets key is {KEY_BYTES} bytes, not {len(raw)}")
        self._raw = raw
        self._aead = AESGCM(raw)
        self._digest_key = hmac.digest(raw, b"ferry secrets digest v1", "sha256")
        self.id = hashlib.sha256(b"ferry secrets key id v1\0" + raw).hexdigest()[:16]

    @classmethod
    def generate(cls) -> SecretsKey:
        """A new random key (from the OS's CSPRNG)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> SecretsKey:
        """The key written as base64 of 32 bytes (surrounding blanks ignored).

        Raises ``ValueError`` saying what is wrong (never echoing the text).
        """
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("it is not base64") from None
        return cls(raw)

    def __repr__(self) -> str:
        return f"SecretsKey(id={self.id})"

    __str__ = __repr__

    def digest(self, app_name: str, name: str, value: str) -> str:
        """The keyed digest ``ferry secrets list`` shows (16 hex characters)."""
        message = _associated_data(app_name, name) + b"\0" + value.encode()
        return hmac.new(self._digest_key, message, "sha256").hexdigest()[:_DIGEST_CHARS]

    def seal(self, app_name: str, name: str, value: str) -> SealedValue:
        """Encrypt ``value`` for secret ``name`` of ``app_name`` with a fresh nonce."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode(), _associated_data(app_name, name))
        return SealedValue(ciphertext, nonce, self.id, self.digest(app_name, name, value))

    def open(self, app_name: str, name: str, sealed: SealedValue) -> str:
        """The value of ``sealed``; ``WrongKeyError`` (naming the secret, not its value)
        when it was sealed with another key, for another app or name, or was changed."""
        if sealed.key_id != self.id:
            raise WrongKeyError(
                f"secret {name} of app {app_name} was sealed with key {sealed.key_id}, "
                f"not with this control plane's key {self.id}",
                hint="start the control plane with the key the secrets were sealed with",
            )
        try:
            plain = self._aead.decrypt(
                sealed.nonce, sealed.ciphertext, _associated_data(app_name, name)
            )
        except InvalidTag:
            raise WrongKeyError(
                f"secret {name} of app {app_name} does not open with key {self.id}: "
                "its stored bytes were changed or belong to another app or name",
                hint=f"set it again with `ferry secrets set {name}=… -a {app_name}`",
            ) from None
        return plain.decode()

    def export(self) -> str:
        """The key as base64 text, for writing the key file (and only that)."""
        return base64.b64encode(self._raw).decode()
