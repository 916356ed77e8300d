"""`ferry machine ps` as a user sees it in the 3-region cluster: the deployed demo app's
httpd, listening on its internal port, as the machine's agent reported it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import demo_dir, ferry
from tests.e2e.test_edge import wait_routable

pytestmark = pytest.mark.e2e

HTTPD = "/bin/busybox httpd -f -vv -p 8080 -h /www"


def test_machine_ps_lists_the_deployed_apps_process_and_its_socket(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text()
    (app_dir / "fly.toml").write_text(toml.replace('app = "hello"', 'app = "procs"'))
    deployed = ferry(cluster, "deploy", "--regions", "sin", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    wait_routable(cluster, "sin", "procs")
    (m,) = client.list_machines("procs")

    processes, age = client.machine_processes("procs", m.id)
    httpd = next(p for p in processes if p.command == HTTPD)
    assert [(s.proto, s.address) for s in httpd.listen_sockets] == [("tcp6", "[::]:8080")]
    assert httpd.rss > 0 and age <= 30

    shown = ferry(cluster, "machine", "ps", m.id, "-a", "procs")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "httpd -f -vv -p 8080" in shown.stdout and "[::]:8080" in shown.stdout

    ferry(cluster, "machine", "stop", m.id, "-a", "procs")
    client.wait_machine("procs", m.id, state="stopped", timeout=30)
    refused = ferry(cluster, "machine", "ps", m.id, "-a", "procs")
    assert refused.returncode != 0 and "is stopped" in refused.stdout + refused.stderr
