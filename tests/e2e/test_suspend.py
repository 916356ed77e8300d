"""Suspend as a user sees it: `ferry machine suspend`, `ferry status`, and a request
to an app whose only machine is suspended, served after the edge wakes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import MachineState
from tests.e2e.conftest import demo_dir, ferry
from tests.e2e.test_edge import curl, wait_routable

pytestmark = pytest.mark.e2e


def test_a_request_to_an_app_whose_only_machine_is_suspended_is_served(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text()
    toml = toml.replace('app = "hello"', 'app = "dozy"')
    toml = toml.replace('auto_stop_machines = "off"', 'auto_stop_machines = "suspend"')
    (app_dir / "fly.toml").write_text(toml.replace("min_machines_running = 1", ""))
    deployed = ferry(cluster, "deploy", "--regions", "iad", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    wait_routable(cluster, "iad", "dozy")
    (m,) = client.list_machines("dozy")
    assert m.config.services[0].autostop == "suspend"

    suspended = ferry(cluster, "machine", "suspend", m.id, "-a", "dozy")
    assert suspended.returncode == 0 and "is suspending" in suspended.stdout, suspended.stderr
    client.wait_machine("dozy", m.id, state="suspended", timeout=30)
    status = ferry(cluster, "status", "-a", "dozy")
    assert "suspended" in status.stdout, status.stdout
    again = ferry(cluster, "machine", "suspend", m.id, "-a", "dozy")
    assert again.returncode == 0  # already suspended: nothing to do

    result = curl(cluster, "iad", "-w", " %{http_code}", "http://dozy.ferry.test/")
    body, status_code = result.stdout.rsplit(" ", 1)
    assert status_code == "200" and "region=iad" in body, result.stdout
    # The thawed process answers before the agent's report of it lands: wait for the report.
    client.wait_machine("dozy", m.id, state="started", timeout=10)
    resumed = client.get_machine("dozy", m.id)
    assert resumed.state is MachineState.STARTED
    # Resumed (the same process thawed), not booted again from the image.
    assert any(e.type == "start" and e.status == "resumed" for e in resumed.events)

    stopped = ferry(cluster, "machine", "stop", m.id, "-a", "dozy")
    assert stopped.returncode == 0
    client.wait_machine("dozy", m.id, state="stopped", timeout=30)
    refused = ferry(cluster, "machine", "suspend", m.id, "-a", "dozy")
    assert refused.returncode != 0
    assert "only a started machine can be suspended" in refused.stdout + refused.stderr
