"""App secrets on the control plane: validate, seal, store, list, and open for one machine.

Values are checked (``ferry.secrets.names``) and sealed (``SecretsKey``) before
the store sees them; every change of one request is one store transaction, so
a refused value leaves every other one of the request unstored too. Values
leave in plain text only through ``machine_env``, the host-scoped call an agent
makes when it starts a container. Errors name secrets, never values.
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.errors import NotFoundError, ValidationError
from ferry.model import Machine, MachineState
from ferry.model.secrets import SecretInfo, SecretsVersions, StoredSecret
from ferry.secrets import SealedValue, SecretsKey, check_secret_name, check_secret_value
from ferry.secrets.names import check_total
from ferry.server.clock import Clock
from ferry.store import StateStore
from ferry.store.secrets_base import SealedFields

__all__ = ["SecretsService", "info_of"]

_TAG_BYTES = 16  # AES-GCM's tag, appended to every ciphertext


def info_of(row: StoredSecret, versions: SecretsVersions) -> SecretInfo:
    """What the API shows of a stored secret (no value)."""
    return SecretInfo(
        name=row.name,
        digest=row.digest,
        created_at=row.created_at,
        updated_at=row.updated_at,
        staged=row.version > versions.deployed,
    )


def _sealed(row: StoredSecret) -> SealedValue:
    return SealedValue(row.ciphertext, row.nonce, row.key_id, row.digest)


def _fields(sealed: SealedValue) -> SealedFields:
    return sealed.ciphertext, sealed.nonce, sealed.key_id, sealed.digest


class SecretsService:
    """Thread-safe; every method blocks on the store."""

    def __init__(self, store: StateStore, clock: Clock, key: SecretsKey) -> None:
        self.store = store
        self.clock = clock
        self.key = key

    def list(self, app_name: str) -> tuple[SecretsVersions, list[SecretInfo]]:
        """The app's secrets (names, digests, dates, staged or not); ``NotFoundError``
        for an unknown app."""
        self.store.get_app(app_name)
        versions, rows = self.store.list_secrets(app_name)
        return versions, [info_of(row, versions) for row in rows]

    def change(self, app_name: str, values: Mapping[str, str | None]) -> SecretsVersions:
        """Set the secrets with a value and remove those given ``None``, all or nothing.

        ``ValidationError`` names the first bad name or value (nothing stored),
        ``NotFoundError`` an unknown app or a removal of a secret that is not set.
        """
        if not values:
            raise ValidationError(
                "no secrets given", hint="give at least one NAME=VALUE (or a name to unset)"
            )
        for name, value in values.items():
            check_secret_name(name)
            if value is not None:
                check_secret_value(name, value)
        self.store.get_app(app_name)
        _versions, rows = self.store.list_secrets(app_name)
        sizes = {row.name: len(row.ciphertext) - _TAG_BYTES for row in rows}
        for name, value in values.items():
            if value is None:
                sizes.pop(name, None)
            else:
                sizes[name] = len(value.encode())
        check_total(app_name, sizes)  # before sealing: a huge request costs no encryption
        upserts = {
            name: _fields(self.key.seal(app_name, name, value))
            for name, value in values.items()
            if value is not None
        }
        removals = [name for name, value in values.items() if value is None]
        return self.store.change_secrets(app_name, upserts, removals, at=self.clock.now())

    def machine_env(self, host_id: str, machine_id: str) -> tuple[Machine, dict[str, str]]:
        """The machine and its app's secrets in plain text, for the agent of ``host_id``.

        ``NotFoundError`` for a machine that is not on that host (or destroyed):
        a host's credential opens only its own machines' secrets.
        """
        try:
            machine = self.store.get_machine(machine_id)
        except NotFoundError:
            machine = None
        if machine is None or machine.host_id != host_id or machine.state is MachineState.DESTROYED:
            raise NotFoundError(
                f"machine {machine_id!r} not found on host {host_id!r}",
                hint="a host's agent asks only for the machines placed on it",
            )
        _versions, rows = self.store.list_secrets(machine.app_name)
        return machine, {
            row.name: self.key.open(machine.app_name, row.name, _sealed(row)) for row in rows
        }

    def reseal(self, new_key: SecretsKey) -> int:
        """Re-encrypt every stored value with ``new_key`` in one transaction (fresh nonces,
        new digests); the number of values. ``WrongKeyError`` (nothing changed) when a
        stored value does not open with this service's key."""

        def reseal_one(row: StoredSecret) -> SealedFields:
            plain = self.key.open(row.app_name, row.name, _sealed(row))
            return _fields(new_key.seal(row.app_name, row.name, plain))

        return self.store.reseal_secrets(reseal_one)
