"""Leases, metadata, cordon and config versions of machines (Fly's Machines API routes)."""

from __future__ import annotations

from typing import Any

from ferry.client._http import HttpCore, _decode
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model.lease import NONCE_HEADER, MachineLease
from ferry.model.machine import MachineVersion
from ferry.model.processes import PS_AGE_HEADER, ProcessStat


def nonce_header(nonce: str | None) -> dict[str, str] | None:
    """The ``fly-machine-lease-nonce`` header for a request made under a lease."""
    return {NONCE_HEADER: nonce} if nonce else None


class MachineExtrasMethods(HttpCore):
    """Every method blocks; errors as in ``HttpCore`` (``ApiError`` carries the status:
    409 lease held by another, 412 a nonce that matches no live lease)."""

    def _machine(self, app: str, machine_id: str) -> str:
        return f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}"

    # -- leases --------------------------------------------------------------
    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int | None = None,
        description: str | None = None,
        nonce: str | None = None,
    ) -> MachineLease:
        """Take the machine's lease, or refresh yours (pass its ``nonce``)."""
        body = {k: v for k, v in {"ttl": ttl, "description": description}.items() if v is not None}
        data = self._request(
            "POST",
            f"{self._machine(app, machine_id)}/lease",
            body=body,
            headers=nonce_header(nonce),
        )
        return _lease(data)

    def get_lease(self, app: str, machine_id: str) -> MachineLease:
        """The live lease; ``ApiError`` 404 when there is none."""
        return _lease(self._request("GET", f"{self._machine(app, machine_id)}/lease"))

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        path = f"{self._machine(app, machine_id)}/lease"
        self._request("DELETE", path, headers=nonce_header(nonce))

    # -- metadata ------------------------------------------------------------
    def get_metadata(self, app: str, machine_id: str) -> dict[str, str]:
        data = self._request("GET", f"{self._machine(app, machine_id)}/metadata") or {}
        return {str(k): str(v) for k, v in data.items()}

    def set_metadata(self, app: str, machine_id: str, key: str, value: str) -> None:
        path = f"{self._machine(app, machine_id)}/metadata/{_seg(key)}"
        self._request("POST", path, body={"value": value})

    def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        path = f"{self._machine(app, machine_id)}/metadata/{_seg(key)}"
        self._request("DELETE", path)

    # -- cordon and versions -------------------------------------------------
    def cordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        """Keep the edges from sending the (started) machine new requests."""
        path = f"{self._machine(app, machine_id)}/cordon"
        self._request("POST", path, headers=nonce_header(nonce))

    def uncordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        path = f"{self._machine(app, machine_id)}/uncordon"
        self._request("POST", path, headers=nonce_header(nonce))

    def machine_versions(self, app: str, machine_id: str) -> list[MachineVersion]:
        """Every config the machine had, newest first."""
        path = f"{self._machine(app, machine_id)}/versions"
        return parse_models(MachineVersion, self._request("GET", path))

    def machine_processes(
        self, app: str, machine_id: str, *, sort_by: str | None = None, order: str | None = None
    ) -> tuple[list[ProcessStat], float]:
        """The started machine's processes and their age in seconds (``Ferry-Ps-Age``).

        ``ApiError`` 409 when the machine is not started, 503 when its host has not
        reported them lately.
        """
        path = f"{self._machine(app, machine_id)}/ps"
        response = self._exchange("GET", path, params={"sort_by": sort_by, "order": order})
        try:
            age = float(response.headers.get(PS_AGE_HEADER, ""))
        except ValueError as exc:
            raise UnavailableError(f"the Ferry API sent ps without {PS_AGE_HEADER}") from exc
        return parse_models(ProcessStat, _decode(response)), age


def _lease(data: Any) -> MachineLease:
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise UnavailableError("the Ferry API sent a lease answer without data")
    return parse_model(MachineLease, data["data"])
