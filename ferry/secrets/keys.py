"""Where the control plane's secrets key comes from, and the checks before serving with it.

The key is ``$FERRY_SECRETS_KEY`` (base64 of 32 bytes) when set, else the file
``$FERRY_SECRETS_KEY_FILE``, else ``<server dir>/secrets.key``. At start
(``open_secrets_key``):

- no key anywhere and nothing sealed yet: a new key is written to the file, mode 0600;
- no key anywhere but sealed values exist: refuse, naming the file and the variable;
- a key that is not base64 of 32 bytes: refuse, naming where it came from;
- a key other than the one the stored values were sealed with: refuse, with both
  key ids. If ``secrets.key.new`` holds the right key, a rotation was cut short
  between its commit and the file's replacement: the file is replaced now.

Refusing is the point: a control plane that started anyway would hand machines
secrets it cannot decrypt. Messages never contain a key.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigError, UnavailableError
from ferry.secrets.crypto import SecretsKey

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "KeySource",
    "hold_server_lock",
    "key_file_path",
    "open_secrets_key",
    "read_key_file",
    "write_key_file",
]

KEY_ENV = "FERRY_SECRETS_KEY"
KEY_FILE_ENV = "FERRY_SECRETS_KEY_FILE"
_HINT_GENERATE = "make one with `head -c 32 /dev/urandom | base64`"

log = logging.getLogger("ferry.secrets")


@dataclass(frozen=True)
class KeySource:
    """The key and where it came from: ``path`` is ``None`` when it came from the env."""

    key: SecretsKey
    where: str
    path: Path | None


def key_file_path(server_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """``$FERRY_SECRETS_KEY_FILE`` or ``<server_dir>/secrets.key``."""
    named = environ.get(KEY_FILE_ENV, "").strip()
    return Path(named).expanduser() if named else server_dir / "secrets.key"


def pending_path(path: Path) -> Path:
    """Where a rotation puts the new key until its re-encryption has committed."""
    return path.with_name(path.name + ".new")


def read_key_file(path: Path) -> SecretsKey:
    """The key in ``path``; ``ConfigError`` naming the file when it is unreadable or wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the secrets key file {path}: {exc.strerror}",
            hint="check the file and its permissions",
        ) from exc
    try:
        key = SecretsKey.from_text(text)
    except ValueError as exc:
        raise ConfigError(
            f"the secrets key file {path} does not hold a key: {exc}",
            hint=f"it must hold base64 of 32 random bytes; {_HINT_GENERATE}",
        ) from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("secrets key file %s is readable by others (mode %o): chmod 600 it", path, mode)
    return key


def write_key_file(path: Path, key: SecretsKey) -> None:
    """Write ``key`` to ``path`` atomically, mode 0600 (through a temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, (key.export() + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def _load(path: Path, environ: Mapping[str, str]) -> KeySource | None:
    text = environ.get(KEY_ENV, "")
    if text.strip():
        try:
            return KeySource(SecretsKey.from_text(text), f"${KEY_ENV}", None)
        except ValueError as exc:
            raise ConfigError(
                f"${KEY_ENV} does not hold a secrets key: {exc}",
                hint=f"it must be base64 of 32 random bytes; {_HINT_GENERATE}",
            ) from None
    if not path.exists():
        return None
    return KeySource(read_key_file(path), str(path), path)


def open_secrets_key(
    server_dir: Path, sealed_by: Mapping[str, int], environ: Mapping[str, str] = os.environ
) -> KeySource:
    """The key to serve with, given how many stored values each key id sealed.

    Creates the key file when there is no key and nothing is sealed. Raises
    ``ConfigError`` (what is wrong, which file or variable, what to do) otherwise.
    """
    path = key_file_path(server_dir, environ)
    source = _load(path, environ)
    total = sum(sealed_by.values())
    if source is None:
        if total:
            raise ConfigError(
                f"{total} app secrets are stored, sealed with key {', '.join(sorted(sealed_by))}, "
                f"but there is no secrets key: neither ${KEY_ENV} nor the file {path} exists",
                hint="restore the key file from your backup (or set the variable); "
                "without it the stored secrets cannot be decrypted",
            )
        key = SecretsKey.generate()
        write_key_file(path, key)
        log.info("created the secrets key file %s (key %s): back it up", path, key.id)
        return KeySource(key, str(path), path)
    wrong = sorted(set(sealed_by) - {source.key.id})
    if not wrong:
        return source
    pending = pending_path(path)
    if source.path is not None and pending.exists():
        candidate = read_key_file(pending)
        if set(sealed_by) == {candidate.id}:
            os.replace(pending, path)
            log.warning(
                "finished an interrupted key rotation: %s now holds key %s", path, candidate.id
            )
            return KeySource(candidate, str(path), path)
    count = sum(sealed_by[key_id] for key_id in wrong)
    raise ConfigError(
        f"the secrets key in {source.where} (key {source.key.id}) is not the one "
        f"{count} stored app secrets were sealed with (key {', '.join(wrong)})",
        hint="start the control plane with the key they were sealed with (restore the key "
        f"file or fix ${KEY_ENV}); to change keys, use `ferry secrets rotate-key`",
    )


@contextlib.contextmanager
def hold_server_lock(server_dir: Path) -> Iterator[None]:
    """Hold ``<server_dir>/server.lock`` while the block runs: one control plane (or one
    key rotation) per state directory. ``UnavailableError`` if another holds it."""
    server_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(server_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UnavailableError(
                f"another control plane (or key rotation) is using {server_dir}",
                hint="stop it first; `ferry cluster down` stops the embedded cluster",
            ) from None
        yield
    finally:
        os.close(descriptor)
