"""What a user sees when a deploy goes wrong or a request makes no sense.

Every bad input gets a clear message, a non-zero exit (or a 4xx) and changes
nothing; a rolling deploy whose new version fails stops, and the machines it
has not reached keep serving the old version.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import MachineState
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def roll_app(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """App `roll`: the demo with two machines in ams."""
    app_dir = demo_dir(tmp_path_factory.mktemp("roll"))
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "roll"')
    (app_dir / "fly.toml").write_text(toml)
    result = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    result = ferry(cluster, "scale", "count", "2", "--region", "ams", "-a", "roll", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    machines = client.list_machines("roll")
    assert len(machines) == 2 and all(m.state is MachineState.STARTED for m in machines)
    return machines[0].config.image


def test_failed_rolling_deploy_stops_and_old_machines_keep_serving(
    cluster: ClusterSettings, client: FerryClient, roll_app: str, tmp_path: Path
) -> None:
    before = {m.id: m.instance_id for m in client.list_machines("roll")}
    (tmp_path / "fly.toml").write_text(
        f"""
app = "roll"
primary_region = "ams"
[build]
  image = "{roll_app}"
[experimental]
  entrypoint = ["/bin/busybox", "false"]
[[restart]]
  policy = "never"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    path = "/"
[deploy]
  wait_timeout = "20s"
"""
    )
    result = ferry(cluster, "deploy", cwd=tmp_path)
    assert result.returncode != 0
    assert "stopped" in (result.stdout + result.stderr)
    after = {m.id: m for m in client.list_machines("roll")}
    changed = [mid for mid, m in after.items() if m.instance_id != before[mid]]
    assert len(changed) == 1  # the rollout stopped at the first failing machine
    untouched = next(m for mid, m in after.items() if mid not in changed)
    assert untouched.state is MachineState.STARTED
    answer = ferry(
        cluster,
        "region",
        "exec",
        "ams",
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        f"http://{untouched.host_ip}:8080/",
    )
    assert f"machine={untouched.id}" in answer.stdout


def test_unknown_region_is_refused_before_anything_changes(
    cluster: ClusterSettings, client: FerryClient, roll_app: str
) -> None:
    before = client.list_machines("roll")
    result = ferry(cluster, "scale", "count", "1", "--region", "xyz", "-a", "roll", "--yes")
    assert result.returncode != 0
    assert "xyz" in result.stderr and "ams" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(client.list_machines("roll")) == len(before)


def test_an_image_that_does_not_exist_is_named(cluster: ClusterSettings, tmp_path: Path) -> None:
    missing = f"{cluster.registry_address}/nothing-here:v1"
    result = ferry(cluster, "machine", "run", missing, "-a", "roll", "--region", "ams")
    assert result.returncode != 0
    assert "nothing-here" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_machine_larger_than_any_host_names_region_and_shortfall(
    cluster: ClusterSettings, client: FerryClient, roll_app: str
) -> None:
    before = len(client.list_machines("roll"))
    result = ferry(
        cluster, "machine", "run", roll_app, "-a", "roll", "--region", "iad", "--vm-memory", "65536"
    )
    assert result.returncode != 0
    assert "iad" in result.stderr and "65536" in result.stderr
    assert len(client.list_machines("roll")) == before


def test_api_answers_client_mistakes_with_4xx(cluster: ClusterSettings, roll_app: str) -> None:
    token = cluster.token_path.read_text().strip()
    api = cluster.api_url
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api}/v1/apps").status_code == 401
    assert httpx.get(f"{api}/v1/apps", headers={"Authorization": "Bearer nope"}).status_code == 401
    dup = httpx.post(
        f"{api}/v1/apps", json={"app_name": "roll", "org_slug": "personal"}, headers=auth
    )
    assert dup.status_code == 409 and "roll" in dup.json()["error"]
    missing = httpx.get(f"{api}/v1/apps/roll/machines/00000000000000", headers=auth)
    assert missing.status_code == 404 and "00000000000000" in missing.json()["error"]
    garbage = httpx.post(f"{api}/v1/apps/roll/machines", content=b"{not json", headers=auth)
    assert garbage.status_code == 400


def test_starting_a_destroyed_machine_is_refused(
    cluster: ClusterSettings, client: FerryClient, roll_app: str
) -> None:
    result = ferry(cluster, "machine", "run", roll_app, "-a", "roll", "--region", "sin")
    assert result.returncode == 0, result.stderr
    m = next(x for x in client.list_machines("roll") if x.region == "sin")
    client.wait_machine("roll", m.id, state="started", timeout=30)
    assert ferry(cluster, "machine", "destroy", m.id, "-a", "roll").returncode != 0  # running
    assert ferry(cluster, "machine", "destroy", m.id, "-a", "roll", "--force").returncode == 0
    client.wait_machine("roll", m.id, state="destroyed", timeout=30)
    again = ferry(cluster, "machine", "start", m.id, "-a", "roll")
    assert again.returncode != 0
    assert "destroyed" in again.stderr


def test_a_local_oci_layout_deploys_by_digest(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    from tests.integration.images import build_busybox_image

    layout = build_busybox_image(
        tmp_path,
        entrypoint=("/bin/busybox", "sh", "-c"),
        cmd=('echo "hello from $FLY_REGION" > /tmp/index.html; exec httpd -f -p 8080 -h /tmp',),
    )
    (tmp_path / "fly.toml").write_text(
        f'app = "ocidemo"\nprimary_region = "sin"\n[build]\n  image = "{layout.name}"\n'
        "[http_service]\n  internal_port = 8080\n"
    )
    result = ferry(cluster, "deploy", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (m,) = client.list_machines("ocidemo")
    assert m.region == "sin" and "@sha256:" in m.config.image
    answer = ferry(
        cluster,
        "region",
        "exec",
        "sin",
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        f"http://{m.host_ip}:8080/index.html",
    )
    assert answer.stdout.strip() == "hello from sin"
