"""The calls about an app's secrets (Fly's app secrets API; docs/secrets.md).

Values travel to the server only; nothing here returns one, except
``machine_secrets``, the host agent's call for a machine it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model.secrets import AppSecrets

#: How long a change may take to roll every machine before the client gives up waiting
#: (the roll itself goes on on the server).
ROLL_TIMEOUT_SECONDS = 3600.0


class SecretsMethods(HttpCore):
    """Secrets endpoints. Every method blocks; errors as in ``HttpCore`` (400 naming a bad
    name or value, 404 for an unknown app or secret, 409 when nothing is staged)."""

    def _secrets(self, app: str) -> str:
        return f"/v1/apps/{_seg(app)}/secrets"

    def list_secrets(self, app: str) -> AppSecrets:
        """Names, digests, dates, staged or not; the latest roll."""
        return parse_model(AppSecrets, self._request("GET", self._secrets(app)))

    def set_secrets(
        self,
        app: str,
        values: Mapping[str, str | None],
        *,
        stage: bool = False,
        detach: bool = False,
    ) -> AppSecrets:
        """Set (``None``: unset) secrets in one change. Unless ``stage``, the server rolls
        the app's machines; without ``detach`` this returns when the roll has ended."""
        body = {"values": dict(values), "stage": stage, "detach": detach}
        timeout = None if stage or detach else ROLL_TIMEOUT_SECONDS
        data = self._request("POST", self._secrets(app), body=body, timeout=timeout)
        return parse_model(AppSecrets, data)

    def unset_secrets(
        self, app: str, names: Iterable[str], *, stage: bool = False, detach: bool = False
    ) -> AppSecrets:
        """Remove secrets in one change (404 naming those not set: nothing removed)."""
        return self.set_secrets(app, dict.fromkeys(names), stage=stage, detach=detach)

    def deploy_secrets(self, app: str, *, detach: bool = False) -> AppSecrets:
        """Roll the app's machines onto its staged secrets (409 when none are staged)."""
        timeout = None if detach else ROLL_TIMEOUT_SECONDS
        path = f"{self._secrets(app)}/deploy"
        data = self._request("POST", path, body={"detach": detach}, timeout=timeout)
        return parse_model(AppSecrets, data)

    def machine_secrets(self, host_id: str, machine_id: str) -> dict[str, str]:
        """The app's secrets for a machine of ``host_id`` (the agent's call, at each start)."""
        path = f"/v1/hosts/{_seg(host_id)}/machines/{_seg(machine_id)}/secrets"
        data = self._request("GET", path)
        env = data.get("env") if isinstance(data, dict) else None
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise UnavailableError("the Ferry API sent secrets in a shape this agent cannot read")
        return dict(env)
