"""The control plane's side of the autoscaler: a ``Fleet`` over the store, services and edges.

``PlaneFleet`` is the thin adapter ``ferry.autoscale.AutoscaleLoop`` acts
through. Every action goes through ``MachineService`` (optimistic writes,
watchers notified) with ``source="ferry"``, and the decision's reason is
appended to the machine's events as ``{"type": "autoscale", "source":
"ferry", "status": <kind>, "request": {"reason": …}}``. Creations allow the
regional capacity fallback. Every method blocks (store I/O).
"""

from __future__ import annotations

from ferry.autoscale.demand import EdgeAppSample, EdgeSample, MachineActivity
from ferry.model import Machine
from ferry.model.autoscale import AutoscalePolicy
from ferry.server.clock import Clock
from ferry.server.machines_service import MachineService, make_event
from ferry.server.schemas import CreateMachineRequest
from ferry.server.traffic import AppTraffic, EdgeTraffic
from ferry.store import StateStore

__all__ = ["PlaneFleet", "edge_samples"]


def _sample(traffic: AppTraffic) -> EdgeAppSample:
    return EdgeAppSample(
        requests_total=sum(traffic.requests.values()),
        unserved_total=traffic.unserved_total,
        in_flight=traffic.in_flight,
        machines={
            machine_id: MachineActivity(load.in_flight, load.requests_total)
            for machine_id, load in traffic.machines.items()
        },
    )


def edge_samples(traffic: EdgeTraffic) -> list[EdgeSample]:
    """The edges' fresh reports in the autoscaler's terms, by edge region."""
    return [
        EdgeSample(
            region=region,
            received_at=received_at,
            apps={app: _sample(figures) for app, figures in report.apps.items()},
        )
        for region, (received_at, report) in sorted(traffic.snapshot().items())
    ]


class PlaneFleet:
    """Implements ``ferry.autoscale.Fleet`` for one control plane."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        machines: MachineService,
        traffic: EdgeTraffic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._machines = machines
        self.traffic = traffic

    def app_names(self) -> list[str]:
        return [app.name for app in self._store.list_apps() if app.status != "destroying"]

    def policy(self, app: str) -> AutoscalePolicy | None:
        return self._store.get_autoscale_policy(app)

    def machines(self, app: str) -> list[Machine]:
        return self._store.list_machines(app_name=app, include_destroyed=False)

    def edge_samples(self) -> list[EdgeSample]:
        return edge_samples(self.traffic)

    def _record(self, machine_id: str, kind: str, reason: str, note: str | None = None) -> None:
        event = make_event(
            self._clock, "autoscale", kind, "ferry", reason=reason, placement_note=note
        )
        self._store.append_event(machine_id, event)

    def create(
        self, app: str, template: Machine, region: str, reason: str
    ) -> tuple[Machine, str | None]:
        request = CreateMachineRequest(region=region, config=template.config, region_fallback=True)
        created = self._machines.create(app, request, source="ferry", reason=reason)
        note = next(
            (
                str(e.request["placement_note"])
                for e in created.events
                if "placement_note" in e.request
            ),
            None,
        )
        self._record(created.id, "create", reason, note)
        return created, note

    def start(self, app: str, machine_id: str, reason: str) -> None:
        self._machines.start(app, machine_id, source="ferry")
        self._record(machine_id, "start", reason)

    def stop(self, app: str, machine_id: str, reason: str) -> None:
        self._machines.stop(app, machine_id, signal=None, source="ferry")
        self._record(machine_id, "stop", reason)

    def suspend(self, app: str, machine_id: str, reason: str) -> None:
        self._machines.suspend(app, machine_id, source="ferry")
        self._record(machine_id, "suspend", reason)

    def destroy(self, app: str, machine_id: str, reason: str) -> None:
        self._machines.destroy(app, machine_id, source="ferry")
        self._record(machine_id, "destroy", reason)
