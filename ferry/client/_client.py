"""``FerryClient``: one method per call of the control-plane API (docs/api.md)."""

from __future__ import annotations

from typing import Any

from ferry.client._access import AccessMethods
from ferry.client._agent import AgentMethods
from ferry.client._audit import AuditMethods
from ferry.client._certs import CertsMethods
from ferry.client._exec import ExecMethods
from ferry.client._flycast import FlycastMethods
from ferry.client._join import JoinMethods
from ferry.client._machine_extras import MachineExtrasMethods, nonce_header
from ferry.client._mesh import MeshMethods
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.client._releases import ReleaseMethods
from ferry.client._secrets import SecretsMethods
from ferry.client._volumes import VolumeMethods
from ferry.client._waf import WafMethods
from ferry.client._wireguard import WireGuardMethods
from ferry.errors import UnavailableError
from ferry.model import App, Host, Machine, MachineConfig, MachineEvent, Region
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.postgres_follow import FollowPolicy


def placement_note(machine: Machine) -> str | None:
    """The capacity-fallback note of a just-created machine ("placed in iad: …"), if any."""
    for event in machine.events:
        note = event.request.get("placement_note")
        if note:
            return str(note)
    return None


#: The server caps ``wait`` at this many seconds (docs/api.md).
MAX_WAIT_SECONDS = 300
#: Extra seconds a long-poll request may take beyond its server-side timeout.
LONG_POLL_SLACK = 10.0


class FerryClient(
    AgentMethods,
    ReleaseMethods,
    MachineExtrasMethods,
    AccessMethods,
    SecretsMethods,
    CertsMethods,
    AuditMethods,
    WafMethods,
    MeshMethods,
    JoinMethods,
    WireGuardMethods,
    VolumeMethods,
    ExecMethods,
    FlycastMethods,
):
    """Synchronous client of the Ferry API; every method blocks until the answer arrives.

    ``FerryClient()`` reads ``FERRY_API_URL`` and ``FERRY_API_TOKEN`` (else
    ``FLY_API_TOKEN``, else the admin-token file under ``$FERRY_HOME``). Methods
    raise ``ApiError`` for an error answer (with ``status`` and the server's
    ``hint``) and ``UnavailableError`` when the API cannot be reached. Use it as a context
    manager or call ``close()``. ``nonce=`` on a machine change sends the lease
    nonce (``fly-machine-lease-nonce``) of a lease you hold on it.
    """

    def __enter__(self) -> FerryClient:
        return self

    # -- apps ---------------------------------------------------------------

    def list_apps(self, org_slug: str | None = None) -> list[App]:
        """The apps of ``org_slug``, or (``None``) every app this token may read."""
        data = self._request("GET", "/v1/apps", params={"org_slug": org_slug})
        return parse_models(App, (data or {}).get("apps", []))

    def create_app(self, name: str, org_slug: str | None = None, network: str = "default") -> App:
        """Create an app in ``org_slug``; ``None`` lets the server choose (the operator's
        ``personal``, or the caller's only organization). A duplicate name is 409."""
        body = {"app_name": name, "network": network}
        if org_slug is not None:
            body["org_slug"] = org_slug
        return parse_model(App, self._request("POST", "/v1/apps", body=body))

    def get_app(self, name: str) -> App:
        return parse_model(App, self._request("GET", f"/v1/apps/{_seg(name)}"))

    def delete_app(self, name: str, *, force: bool = False) -> None:
        """Ask for the app and all its machines to be destroyed (asynchronous on the server)."""
        self._request("DELETE", f"/v1/apps/{_seg(name)}", params={"force": force})

    # -- machines -----------------------------------------------------------

    def _machines(self, app: str) -> str:
        return f"/v1/apps/{_seg(app)}/machines"

    def create_machine(
        self,
        app: str,
        config: MachineConfig,
        *,
        region: str | None = None,
        name: str | None = None,
        skip_launch: bool = False,
        skip_service_registration: bool = False,
        region_fallback: bool = False,
        lease_ttl: int | None = None,
    ) -> Machine:
        """Create a machine. ``skip_service_registration`` (Fly's) creates it cordoned: no
        edge routes to it until ``uncordon_machine``. ``region_fallback`` (Ferry-only) lets
        a full region send it to the nearest region with room; ``placement_note(machine)``
        then says where and why."""
        body: dict[str, Any] = {"config": config.model_dump(mode="json", exclude_none=True)}
        if region is not None:
            body["region"] = region
        if name is not None:
            body["name"] = name
        if skip_launch:
            body["skip_launch"] = True
        if skip_service_registration:
            body["skip_service_registration"] = True
        if region_fallback:
            body["region_fallback"] = True
        if lease_ttl:
            body["lease_ttl"] = lease_ttl
        return parse_model(Machine, self._request("POST", self._machines(app), body=body))

    def list_machines(
        self, app: str, *, region: str | None = None, include_deleted: bool = False
    ) -> list[Machine]:
        params = {"region": region, "include_deleted": include_deleted}
        return parse_models(Machine, self._request("GET", self._machines(app), params=params))

    def get_machine(self, app: str, machine_id: str) -> Machine:
        path = f"{self._machines(app)}/{_seg(machine_id)}"
        return parse_model(Machine, self._request("GET", path))

    def update_machine(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig,
        *,
        current_version: str | None = None,
        nonce: str | None = None,
    ) -> Machine:
        """Replace the machine's config; the answer carries the new ``instance_id``."""
        body: dict[str, Any] = {"config": config.model_dump(mode="json", exclude_none=True)}
        if current_version is not None:
            body["current_version"] = current_version
        path = f"{self._machines(app)}/{_seg(machine_id)}"
        answer = self._request("POST", path, body=body, headers=nonce_header(nonce))
        return parse_model(Machine, answer)

    def delete_machine(
        self, app: str, machine_id: str, *, force: bool = False, nonce: str | None = None
    ) -> None:
        """Ask for the machine to be destroyed; a running one needs ``force`` (else 409)."""
        path = f"{self._machines(app)}/{_seg(machine_id)}"
        self._request("DELETE", path, params={"force": force}, headers=nonce_header(nonce))

    def start_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> str:
        """Start the machine; returns the state it was in before."""
        path = f"{self._machines(app)}/{_seg(machine_id)}/start"
        data = self._request("POST", path, headers=nonce_header(nonce)) or {}
        return str(data.get("previous_state", ""))

    def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        nonce: str | None = None,
    ) -> None:
        """Ask for the machine to stop; returns at once (wait with ``wait_machine``).

        ``signal``/``timeout`` (e.g. ``"SIGKILL"``, ``"10s"``) replace the config's
        stop_config for this stop only; left out, the config's are used. A bad
        value is refused by the server (``ApiError`` 400 naming it).
        """
        body = {k: v for k, v in {"signal": signal, "timeout": timeout}.items() if v is not None}
        path = f"{self._machines(app)}/{_seg(machine_id)}/stop"
        self._request("POST", path, body=body, headers=nonce_header(nonce))

    def suspend_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        """Freeze the machine's processes, memory kept; ``start_machine`` resumes it.

        Returns at once (wait with ``wait_machine(..., "suspended")``). A machine
        that is not started is refused (``ApiError`` 409).
        """
        path = f"{self._machines(app)}/{_seg(machine_id)}/suspend"
        self._request("POST", path, headers=nonce_header(nonce))

    def restart_machine(
        self, app: str, machine_id: str, *, signal: str | None = None, timeout: str | None = None
    ) -> None:
        params = {"signal": signal, "timeout": timeout}
        self._request("POST", f"{self._machines(app)}/{_seg(machine_id)}/restart", params=params)

    def signal_machine(self, app: str, machine_id: str, signal: str) -> None:
        path = f"{self._machines(app)}/{_seg(machine_id)}/signal"
        self._request("POST", path, body={"signal": signal})

    def wait_machine(
        self,
        app: str,
        machine_id: str,
        *,
        state: str = "started",
        timeout: float = 60,
        instance_id: str | None = None,
    ) -> str:
        """Block until the machine reaches ``state`` (server long-poll, capped at 300 s).

        Returns the state reached. Raises ``ApiError`` with status 408 when the
        server-side timeout passes, 409 when the machine failed instead of starting.
        """
        seconds = max(1, min(MAX_WAIT_SECONDS, round(timeout)))
        params = {"state": state, "timeout": seconds, "instance_id": instance_id}
        path = f"{self._machines(app)}/{_seg(machine_id)}/wait"
        data = self._request("GET", path, params=params, timeout=seconds + LONG_POLL_SLACK) or {}
        return str(data.get("state", state))

    def machine_events(self, app: str, machine_id: str) -> list[MachineEvent]:
        """The machine's events, newest first."""
        path = f"{self._machines(app)}/{_seg(machine_id)}/events"
        return parse_models(MachineEvent, self._request("GET", path))

    def machine_logs(self, app: str, machine_id: str, *, tail: int = 200) -> list[str]:
        """The last ``tail`` log lines the host agent uploaded for the machine, oldest first."""
        path = f"{self._machines(app)}/{_seg(machine_id)}/logs"
        data = self._request("GET", path, params={"tail": tail}) or {}
        return [str(line) for line in data.get("lines", [])]

    # -- autoscale (Ferry-only) ----------------------------------------------

    def put_autoscale_policy(self, app: str, policy: AutoscalePolicy) -> AutoscalePolicy:
        """Store the app's ``[autoscale]`` policy (replacing any previous one)."""
        path = f"/v1/apps/{_seg(app)}/autoscale"
        return parse_model(
            AutoscalePolicy, self._request("PUT", path, body=policy.model_dump(mode="json"))
        )

    def delete_autoscale_policy(self, app: str) -> bool:
        """Remove the app's policy; ``True`` if there was one."""
        data = self._request("DELETE", f"/v1/apps/{_seg(app)}/autoscale") or {}
        return bool(data.get("deleted"))

    def autoscale_status(self, app: str) -> dict[str, Any]:
        """Policy, per-region machines and demand, and the last decisions (docs/api.md)."""
        data = self._request("GET", f"/v1/apps/{_seg(app)}/autoscale/status")
        if not isinstance(data, dict):
            raise UnavailableError("the Ferry API sent no autoscale status")
        return data

    # -- [postgres] follow policy (Ferry-only) -------------------------------

    def put_follow_policy(self, app: str, policy: FollowPolicy) -> FollowPolicy:
        """Store the app's ``[postgres]`` section (replacing any previous one)."""
        path = f"/v1/apps/{_seg(app)}/postgres"
        return parse_model(
            FollowPolicy, self._request("PUT", path, body=policy.model_dump(mode="json"))
        )

    def delete_follow_policy(self, app: str) -> bool:
        """Forget the app's ``[postgres]`` section; ``True`` if there was one."""
        data = self._request("DELETE", f"/v1/apps/{_seg(app)}/postgres") or {}
        return bool(data.get("deleted"))

    def follow_status(self, app: str) -> dict[str, Any]:
        """The policy and what the follow loop last did for its database (docs/api.md)."""
        data = self._request("GET", f"/v1/apps/{_seg(app)}/postgres/status")
        if not isinstance(data, dict):
            raise UnavailableError("the Ferry API sent no follow status")
        return data

    # -- platform -----------------------------------------------------------

    def regions(self) -> list[Region]:
        """The regions that have at least one registered host."""
        data = self._request("GET", "/v1/platform/regions") or {}
        return parse_models(Region, data.get("Regions", []))

    def check_room(self, region: str, size_gb: int, cpus: int, memory_mb: int) -> str:
        """The host of ``region`` with room for a ``size_gb`` volume and a machine of that
        size (Ferry-only); the API's 422 ``CapacityError`` names the region otherwise."""
        params = {"region": region, "size_gb": size_gb, "cpus": cpus, "memory_mb": memory_mb}
        data = self._request("GET", "/v1/platform/room", params=params) or {}
        return str(data.get("host_id", ""))

    def platform_info(self) -> dict[str, Any]:
        """``{"version", "registry", "regions", "hosts"}`` as the server sends it."""
        data = self._request("GET", "/v1/platform/info")
        if not isinstance(data, dict):
            raise UnavailableError("the Ferry API sent no platform information")
        return data

    def hosts(self) -> list[Host]:
        return parse_models(Host, self._request("GET", "/v1/hosts"))

    def healthz(self) -> bool:
        """True when the control plane answers its health check."""
        data = self._request("GET", "/healthz") or {}
        return bool(data.get("ok"))
