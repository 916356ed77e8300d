"""Join tokens: how a server that can reach the control plane becomes a host.

The operator makes a token (``create``); the new server spends it (``join``):
the control plane checks it — well formed, known, its secret's digest, not
expired, never used, for this region if it names one, and a host id nobody
has — before anything changes, then marks it used (one winner if two race),
registers the host and issues the host's own credential. Every refusal names
what is wrong and changes nothing. Tokens read ``fjt1_<id>_<secret>``; the
store keeps the secret's SHA-256 digest only.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ferry.errors import AuthError, ConflictError, ForbiddenError, NotFoundError, ValidationError
from ferry.model import Host
from ferry.model.join import JoinToken
from ferry.server import tokens
from ferry.server.access_service import AccessService, expiry_seconds
from ferry.server.clock import Clock
from ferry.server.hosts_service import HostService, machine_network
from ferry.server.schemas import RegisterHostRequest
from ferry.store.base import StateStore

__all__ = ["DEFAULT_JOIN_EXPIRY", "JoinService", "Joined", "NewJoinToken"]

DEFAULT_JOIN_EXPIRY = "1h"
_SHAPE = re.compile(r"^fjt1_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_CREATE_HINT = "make a new one with `ferry host token create` on a machine with the admin token"


@dataclass(frozen=True)
class NewJoinToken:
    info: JoinToken
    plain: str  # shown once


@dataclass(frozen=True)
class Joined:
    host: Host
    credential: str  # the host's own API credential, shown once


class JoinService:
    """Create, list, revoke and spend join tokens. Methods block (store calls)."""

    def __init__(
        self, store: StateStore, clock: Clock, hosts: HostService, access: AccessService
    ) -> None:
        self._store = store
        self._clock = clock
        self._hosts = hosts
        self._access = access

    def create(self, *, name: str, region: str | None, expiry: str | None) -> NewJoinToken:
        """A new token, good once until ``expiry`` (default one hour)."""
        if len(name) > 100:
            raise ValidationError("join token name is longer than 100 characters")
        if region is not None and not re.fullmatch(r"[a-z0-9-]{2,16}", region):
            raise ValidationError(
                f"region {region!r} is not a region code", hint="e.g. ams, sin, iad"
            )
        seconds = expiry_seconds(expiry or DEFAULT_JOIN_EXPIRY)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        plain = f"fjt1_{token_id}_{secret}"
        now = self._clock.now()
        info = JoinToken(
            id=token_id,
            name=name or "join token",
            region=region,
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
        self._store.insert_join_token(info, tokens.digest(secret))
        return NewJoinToken(info, plain)

    def list(self) -> list[JoinToken]:
        return self._store.list_join_tokens()

    def revoke(self, token_id: str) -> None:
        self._store.delete_join_token(token_id)

    def join(self, plain: str, request: RegisterHostRequest) -> Joined:
        """Spend ``plain`` to register ``request``'s host; its credential, once."""
        info = self._check(plain, request)
        if not self._store.spend_join_token(info.id, request.id, self._clock.now()):
            raise AuthError(
                f"join token {info.id} was already used", hint=_CREATE_HINT
            )  # another server won the race for it
        host = self._hosts.register(request)
        credential = self._access.issue_host_credential(host.id, host.region)
        return Joined(host, credential.plain)

    def _check(self, plain: str, request: RegisterHostRequest) -> JoinToken:
        match = _SHAPE.match(plain.strip())
        if match is None:
            raise AuthError(
                "the join token is malformed: it reads fjt1_<id>_<secret>", hint=_CREATE_HINT
            )
        token_id, secret = match.groups()
        try:
            info, digest = self._store.get_join_token(token_id)
        except NotFoundError:
            raise AuthError("the join token is not valid", hint=_CREATE_HINT) from None
        if not hmac.compare_digest(digest, tokens.digest(secret)):
            raise AuthError("the join token is not valid", hint=_CREATE_HINT)
        if info.used_at is not None:
            raise AuthError(
                f"join token {info.id} was already used by host {info.used_by} at "
                f"{info.used_at.isoformat()}; a join token is good once",
                hint=_CREATE_HINT,
            )
        if self._clock.now() >= info.expires_at:
            raise AuthError(
                f"join token {info.id} expired at {info.expires_at.isoformat()}",
                hint=_CREATE_HINT,
            )
        if info.region is not None and info.region != request.region:
            raise ForbiddenError(
                f"join token {info.id} is for region {info.region}, not {request.region}",
                hint=f"join with --region {info.region}, or make a token for {request.region}",
            )
        if any(host.id == request.id for host in self._store.list_hosts()):
            raise ConflictError(
                f"host {request.id!r} already exists",
                hint="give the new server an id of its own with --id",
            )
        machine_network(request.machine_subnet)
        return info
