"""Each host agent and each edge gets its own credential, minted by the supervisor.

With the cluster's admin token the supervisor asks the control plane for one
``host`` credential per host (``POST /v1/tokens {"kind": "host", ...}``) and
one ``edge`` credential per region, and keeps each in a file of mode 0600 in
that host's or edge's state directory (``hosts/<id>/credential``,
``edges/<region>/credential``). The process gets only its own, through the
environment (``FERRY_API_TOKEN``), never on its command line.

A kept credential is reused across supervisor restarts while the control
plane accepts it; when it answers 401 (revoked, or a store that was reset) a
new one is minted. After minting, every other live credential of the same host
or region is revoked, so deleting the file and restarting is a rotation.
What a credential may do is ``ferry.server.authz``'s business.

Every function blocks on HTTP to the control plane (a few seconds at most).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from ferry.errors import UnavailableError

__all__ = ["CREDENTIAL_FILE", "CredentialKeeper", "CredentialSpec", "write_secret_file"]

log = logging.getLogger("ferry.supervisor")

CREDENTIAL_FILE = "credential"


@dataclass(frozen=True)
class CredentialSpec:
    """Whose credential, and where it is kept."""

    kind: Literal["host", "edge"]
    region: str
    directory: Path
    host_id: str | None = None

    @classmethod
    def host(cls, host_id: str, region: str, state_dir: Path) -> CredentialSpec:
        return cls("host", region, state_dir, host_id)

    @classmethod
    def edge(cls, region: str, state_dir: Path) -> CredentialSpec:
        return cls("edge", region, state_dir)

    @property
    def path(self) -> Path:
        return self.directory / CREDENTIAL_FILE

    @property
    def name(self) -> str:
        return f"host {self.host_id}" if self.kind == "host" else f"edge {self.region}"

    def body(self) -> dict[str, str]:
        """The ``POST /v1/tokens`` body that mints it."""
        body = {"kind": self.kind, "region": self.region, "name": self.name}
        if self.host_id is not None:
            body["host_id"] = self.host_id
        return body

    def same_owner(self, token: dict[str, Any]) -> bool:
        """True for a token row (``GET /v1/tokens``) of this host or edge."""
        if token.get("kind") != self.kind:
            return False
        if self.kind == "host":
            return bool(token.get("host_id") == self.host_id)
        return bool(token.get("region") == self.region)


class CredentialKeeper:
    """Mints, checks and keeps credentials with the admin token."""

    def __init__(self, api_url: str, admin_token: str, *, timeout: float = 5.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._admin = admin_token
        self._timeout = timeout

    def ensure(self, spec: CredentialSpec) -> str:
        """The credential of ``spec``: the kept one if the control plane accepts it,
        else a new one (written 0600, the others of its owner revoked).

        Raises ``UnavailableError`` when the control plane cannot be asked.
        """
        kept = read_secret_file(spec.path)
        if kept and self.accepted(kept):
            return kept
        plain, token_id = self._mint(spec)
        write_secret_file(spec.path, plain)
        self._revoke_others(spec, token_id)
        log.info("minted a new credential for %s (token %s)", spec.name, token_id)
        return plain

    def ensure_when_up(self, spec: CredentialSpec, timeout: float = 30.0) -> str:
        """``ensure``, retried while the control plane is starting (up to ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ensure(spec)
            except UnavailableError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def accepted(self, plain: str) -> bool:
        """False when the control plane answers 401 for ``plain``; True for any other
        answer. Raises ``UnavailableError`` when it does not answer."""
        response = self._call("GET", "/v1/platform/info", token=plain)
        return response.status_code != 401

    def join_token(self, region: str, name: str) -> str:
        """A join token for one server of ``region`` (``ferry host join``); 15 minutes."""
        body = {"region": region, "name": name, "expiry": "15m"}
        response = self._call("POST", "/v1/hosts/join-tokens", json=body)
        if response.status_code != 201:
            raise UnavailableError(
                f"the control plane refused a join token for {name}: "
                f"{response.status_code} {response.text[:200]}",
                hint="see the server log",
            )
        return str(response.json()["token"])

    def _mint(self, spec: CredentialSpec) -> tuple[str, str]:
        response = self._call("POST", "/v1/tokens", json=spec.body())
        if response.status_code != 201:
            raise UnavailableError(
                f"the control plane refused a credential for {spec.name}: "
                f"{response.status_code} {response.text[:200]}",
                hint="see the server log",
            )
        data = response.json()
        return str(data["token"]), str(data["id"])

    def _revoke_others(self, spec: CredentialSpec, keep: str) -> None:
        listed = self._call("GET", "/v1/tokens")
        if listed.status_code != 200:
            log.warning("could not list tokens to retire old ones: %d", listed.status_code)
            return
        for token in listed.json():
            if token.get("id") != keep and not token.get("revoked_at") and spec.same_owner(token):
                self._call("DELETE", f"/v1/tokens/{token['id']}")
                log.info("revoked the previous credential %s of %s", token["id"], spec.name)

    def _call(
        self, method: str, path: str, *, token: str | None = None, json: Any = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self._admin}"}
        try:
            return httpx.request(
                method,
                self.api_url + path,
                headers=headers,
                json=json,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"cannot reach the control plane at {self.api_url}: {exc.__class__.__name__}",
                hint="see server.log",
            ) from exc


def read_secret_file(path: Path) -> str:
    """The file's one line (stripped), or "" when there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` with mode 0600, atomically (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # before any byte: a leftover tmp may have a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    os.replace(tmp, path)
