"""App secrets as the API and the store see them: names, digests, dates, never values.

``SecretInfo`` is what ``GET /v1/apps/{app}/secrets`` answers; ``StoredSecret``
is a store row: the value only as AES-GCM ciphertext (``ferry.secrets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

__all__ = ["AppSecrets", "SecretInfo", "SecretsRollout", "SecretsVersions", "StoredSecret"]


class SecretInfo(BaseModel):
    """One secret of an app, without its value.

    ``digest`` changes when the value changes (a keyed HMAC: it cannot be
    reversed, nor checked against guesses without the control plane's key).
    ``staged`` is true until a rollout has given the app's machines this value.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    digest: str
    created_at: datetime
    updated_at: datetime
    staged: bool = False


class SecretsRollout(BaseModel):
    """A roll of the app's machines onto secrets ``version``: ``running``, ``complete``
    or ``failed`` (``reason`` says why; the machines after ``done`` were not reached)."""

    version: int
    state: str
    machines: list[str] = []
    done: int = 0
    total: int = 0
    reason: str | None = None
    seconds: float = 0.0


class AppSecrets(BaseModel):
    """``GET /v1/apps/{app}/secrets`` and every change's answer: never a value.

    ``version`` counts the app's secret changes; ``deployed`` is the version its
    machines were last rolled to; ``rollout`` the latest roll this server ran."""

    secrets: list[SecretInfo]
    version: int
    deployed: int
    rollout: SecretsRollout | None = None


@dataclass(frozen=True)
class SecretsVersions:
    """An app's secrets counter: bumped by every change; ``deployed`` is the version
    the app's machines were last rolled to (equal: nothing staged)."""

    version: int = 0
    deployed: int = 0

    @property
    def staged(self) -> bool:
        return self.version > self.deployed


@dataclass(frozen=True)
class StoredSecret:
    """One sealed secret as stored (``version``: the app's counter at its last change)."""

    app_name: str
    name: str
    ciphertext: bytes
    nonce: bytes
    key_id: str
    digest: str
    version: int
    created_at: datetime
    updated_at: datetime
