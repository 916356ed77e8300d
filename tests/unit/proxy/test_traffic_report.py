"""The edge's traffic report names only the apps and machines of its routing table."""

from __future__ import annotations

from ferry.model import DesiredState, MachineState
from ferry.proxy.daemon import traffic_report
from ferry.proxy.limits import LoadTracker
from ferry.proxy.metrics import EdgeStats
from ferry.proxy.routes import Backend, RouteTable


def backend(mid: str, app: str) -> Backend:
    return Backend(mid, mid, app, "ams", "10.0.0.2", MachineState.STARTED, DesiredState.STARTED)


def test_apps_and_machines_outside_the_table_are_left_out() -> None:
    stats, load = EdgeStats("ams"), LoadTracker()
    for app, mid in (("web", "m1"), ("web", "m-gone"), ("typo-host", None)):
        if mid is not None:
            load.acquire(app, mid)
            load.release(app, mid)
        stats.record_response(app, 200, 0.01, 10, 100)
    table = RouteTable(3, {"web": (backend("m1", "web"),)})

    body = traffic_report(stats, load, 5.0, table)
    apps = body["apps"]
    assert isinstance(apps, dict)
    assert list(apps) == ["web"]
    assert apps["web"]["machines"] == {"m1": {"in_flight": 0, "requests_total": 1}}
    everything = traffic_report(stats, load, 5.0)["apps"]
    assert isinstance(everything, dict) and set(everything) == {"web", "typo-host"}
