"""Join tokens and joining a server as a host (Ferry-only; docs/networking.md)."""

from __future__ import annotations

from typing import Any

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model import Host
from ferry.model.join import JoinToken


class JoinMethods(HttpCore):
    """Join endpoints. Every method blocks; errors as in ``HttpCore``."""

    def create_join_token(
        self, *, name: str = "", region: str | None = None, expiry: str | None = None
    ) -> tuple[JoinToken, str]:
        """(Operator) A new join token and its value, shown this once."""
        body: dict[str, Any] = {"name": name, "region": region, "expiry": expiry}
        data = self._request("POST", "/v1/hosts/join-tokens", body=body)
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise UnavailableError("the Ferry API sent a join token without its value")
        return parse_model(JoinToken, data), data["token"]

    def list_join_tokens(self) -> list[JoinToken]:
        """(Operator) Every join token, newest first, without values."""
        return parse_models(JoinToken, self._request("GET", "/v1/hosts/join-tokens"))

    def revoke_join_token(self, token_id: str) -> None:
        """(Operator) Forget a join token: it can no longer be used."""
        self._request("DELETE", f"/v1/hosts/join-tokens/{_seg(token_id)}")

    def join_host(self, token: str, registration: dict[str, Any]) -> tuple[Host, str]:
        """Spend ``token`` to register this server as a host; the host and its credential."""
        data = self._request("POST", "/v1/hosts/join", body={**registration, "token": token})
        if not isinstance(data, dict) or not isinstance(data.get("credential"), str):
            raise UnavailableError("the Ferry API answered a join without a credential")
        return parse_model(Host, data.get("host")), data["credential"]
