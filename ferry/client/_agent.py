"""The calls a host agent makes: register, heartbeat, watch its machines, report, upload logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model import CheckStatus, Host, Machine, MachineState
from ferry.model.processes import MachineProcesses

#: The server caps a host watch at this many seconds (docs/api.md).
MAX_WATCH_SECONDS = 60
#: Extra seconds the HTTP request may take beyond the server-side long-poll.
WATCH_SLACK = 10.0


class AgentMethods(HttpCore):
    """Agent endpoints (Ferry-only). Every method blocks; errors as in ``HttpCore``."""

    def register_host(
        self,
        *,
        host_id: str,
        region: str,
        address: str,
        cpus: int,
        memory_mb: int,
        machine_subnet: str,
    ) -> Host:
        """Register (or re-register after a restart) this host; idempotent."""
        body = {
            "id": host_id,
            "region": region,
            "address": address,
            "cpus": cpus,
            "memory_mb": memory_mb,
            "machine_subnet": machine_subnet,
        }
        return parse_model(Host, self._request("POST", "/v1/hosts", body=body))

    def heartbeat(self, host_id: str) -> None:
        self._request("POST", f"/v1/hosts/{_seg(host_id)}/heartbeat")

    def watch_host_machines(
        self, host_id: str, since: int = 0, timeout: float = 30
    ) -> tuple[int, list[Machine]]:
        """The host's full desired state once the store moved past ``since``.

        Long-poll: blocks up to ``timeout`` seconds (capped at 60) on the server,
        with an HTTP timeout ``WATCH_SLACK`` seconds longer so the client never
        gives up first. Returns ``(resource_version, machines)``.
        """
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            f"/v1/hosts/{_seg(host_id)}/machines",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        if not isinstance(data, dict) or "resource_version" not in data:
            raise UnavailableError("the Ferry API sent a host watch without resource_version")
        return int(data["resource_version"]), parse_models(Machine, data.get("machines", []))

    def report_status(
        self,
        host_id: str,
        machine_id: str,
        state: MachineState | str,
        instance_id: str,
        event_type: str,
        event_status: str,
        reason: str | None = None,
        exit_code: int | None = None,
        restart_count: int | None = None,
        checks: Sequence[CheckStatus] | None = None,
    ) -> Machine:
        """Record the actual state of a machine on this host plus one event; returns the machine."""
        event: dict[str, Any] = {"type": event_type, "status": event_status}
        if reason is not None:
            event["reason"] = reason
        body: dict[str, Any] = {"state": str(state), "instance_id": instance_id, "event": event}
        if exit_code is not None:
            body["exit_code"] = exit_code
        if restart_count is not None:
            body["restart_count"] = restart_count
        if checks is not None:
            body["checks"] = [check.model_dump(mode="json") for check in checks]
        path = f"/v1/hosts/{_seg(host_id)}/machines/{_seg(machine_id)}/status"
        return parse_model(Machine, self._request("POST", path, body=body))

    def upload_logs(self, host_id: str, machine_id: str, lines: Sequence[str]) -> None:
        """Append log lines of a machine; the server keeps the last 1000."""
        path = f"/v1/hosts/{_seg(host_id)}/machines/{_seg(machine_id)}/logs"
        self._request("POST", path, body={"lines": list(lines)})

    def report_processes(self, host_id: str, machines: Mapping[str, MachineProcesses]) -> None:
        """Send the processes of this host's started machines, taken just now."""
        body = {"machines": {mid: p.model_dump(mode="json") for mid, p in machines.items()}}
        self._request("POST", f"/v1/hosts/{_seg(host_id)}/processes", body=body)

    # -- edge proxies (Ferry) ------------------------------------------------

    def watch_routes(self, since: int = 0, timeout: float = 30) -> tuple[int, list[Machine]]:
        """Every machine that is not destroyed, once the store moved past ``since``.

        Long-poll like ``watch_host_machines``; returns ``(resource_version, machines)``.
        """
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            "/v1/routes",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        if not isinstance(data, dict) or "resource_version" not in data:
            raise UnavailableError("the Ferry API sent a routes watch without resource_version")
        return int(data["resource_version"]), parse_models(Machine, data.get("machines", []))

    def report_traffic(self, region: str, report: dict[str, Any]) -> None:
        """Send an edge's traffic summary (``{"window_seconds": …, "apps": {…}}``)."""
        self._request("POST", f"/v1/edges/{_seg(region)}/traffic", body=report)

    def app_traffic(self, app: str) -> dict[str, Any]:
        """Edge region -> the app's traffic through that edge, as last reported."""
        data = self._request("GET", f"/v1/apps/{_seg(app)}/traffic")
        return dict(data.get("edges", {})) if isinstance(data, dict) else {}
