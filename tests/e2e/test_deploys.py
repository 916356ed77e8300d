"""Releases, release_command, bluegreen and rollback, as a user of the 3-region cluster sees them.

One app (``rel``, two machines in ams) is deployed once with a build (v1);
later deploys reuse that image with ``ferry deploy --image REF`` so no build
runs while load is measured. A client in ams sends requests through its edge
during every deploy; none may fail.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.deploy.plan import live_machines
from ferry.deploy.release_command import RELEASE_PROCESS_GROUP
from ferry.errors import ApiError
from ferry.model import Machine, MachineState
from tests.e2e.conftest import demo_dir, ferry
from tests.e2e.test_edge import Load, wait_routable

pytestmark = pytest.mark.e2e

APP = "rel"
URL = f"http://{APP}.ferry.test/"
#: The demo image with busybox as its ENTRYPOINT and httpd as its CMD, so a
#: release_command (which replaces the CMD, as on Fly) can run any busybox applet.
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
EXPOSE 8080
ENTRYPOINT ["/bin/busybox"]
CMD ["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]
"""


def serving(client: FerryClient) -> list[Machine]:
    return sorted(live_machines(client.list_machines(APP)), key=lambda m: m.id)


def _events(client: FerryClient, machine_id: str) -> list[tuple[str, str]]:
    """The machine's (type, status) events, oldest first."""
    return [(e.type, e.status) for e in reversed(client.machine_events(APP, machine_id))]


def write_toml(app_dir: Path, greeting: str, deploy: str = "") -> None:
    toml = (app_dir / "fly.toml").read_text().split("\n[deploy]")[0]
    toml = toml.replace('app = "hello"', f'app = "{APP}"')
    for line in toml.splitlines():
        if line.strip().startswith("GREETING"):
            toml = toml.replace(line, f'  GREETING = "{greeting}"')
    (app_dir / "fly.toml").write_text(toml + (f"\n[deploy]\n{deploy}" if deploy else ""))


@pytest.fixture(scope="module")
def site(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The app deployed once (v1, built), two machines in ams; (its directory, v1's image)."""
    app_dir = demo_dir(tmp_path_factory.mktemp("rel"))
    (app_dir / "Dockerfile").write_text(DOCKERFILE)
    write_toml(app_dir, "v1")
    result = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    result = ferry(cluster, "scale", "count", "2", "--region", "ams", "-a", APP, "--yes")
    assert result.returncode == 0, result.stderr
    wait_routable(cluster, "ams", APP)
    (v1,) = client.list_releases(APP)
    assert (v1.version, v1.status, v1.user) == (1, "complete", "admin")
    assert "@sha256:" in v1.image
    return app_dir, v1.image


def deploy_under_load(
    cluster: ClusterSettings, app_dir: Path, *args: str
) -> tuple[str, dict[str, object]]:
    """Run `ferry deploy ARGS` while a client in ams loads the app; (output, load result).

    The load is flowing before the deploy begins and goes on until 20 more requests were
    answered after it ended, however long it took: the whole deploy is under load."""
    load = Load(cluster, "ams", URL, 300)
    try:
        load.wait_flowing()
        began = time.monotonic()
        result = ferry(cluster, "deploy", *args, cwd=app_dir)
        took = time.monotonic() - began
        load.wait_more(20)
    finally:
        stats = load.stop()
    print(f"deploy {' '.join(args)}: {took:.1f}s; load from ams: {stats}")  # figures, with -s
    return str(result.returncode) + "\n" + result.stdout + result.stderr, stats


def test_a_failing_release_command_leaves_the_old_release_serving(
    cluster: ClusterSettings, client: FerryClient, site: tuple[Path, str]
) -> None:
    app_dir, image = site
    before = serving(client)
    write_toml(
        app_dir, "v2", "release_command = \"sh -c 'echo migrating $RELEASE_COMMAND; exit 3'\""
    )
    out, stats = deploy_under_load(cluster, app_dir, "--image", image)
    assert out.startswith("1\n"), out
    assert "migrating 1" in out  # the command's output, with RELEASE_COMMAND=1
    assert "exited with code 3" in out and "previous release keeps serving" in out, out
    assert stats["failed"] == 0 and stats["ok"], stats
    after = serving(client)
    assert [(m.id, m.instance_id) for m in after] == [(m.id, m.instance_id) for m in before]
    assert all(m.config.env["GREETING"] == "v1" for m in after)
    everything = client.list_machines(APP, include_deleted=True)
    release_machines = [
        m for m in everything if m.config.metadata.get("fly_process_group") == RELEASE_PROCESS_GROUP
    ]
    assert release_machines and all(m.desired_state.value == "destroyed" for m in release_machines)
    latest = client.list_releases(APP)[0]
    assert (latest.version, latest.status) == (2, "failed")


def test_a_hanging_release_command_times_out_and_changes_nothing(
    cluster: ClusterSettings, client: FerryClient, site: tuple[Path, str]
) -> None:
    app_dir, image = site
    before = serving(client)
    write_toml(app_dir, "v2", 'release_command = "sleep 600"\nrelease_command_timeout = "2s"\n')
    began = time.monotonic()
    result = ferry(cluster, "deploy", "--image", image, cwd=app_dir)
    assert result.returncode == 1
    assert "did not finish within 2s" in result.stderr, result.stdout + result.stderr
    assert time.monotonic() - began < 30
    assert [(m.id, m.instance_id) for m in serving(client)] == [
        (m.id, m.instance_id) for m in before
    ]
    assert client.list_releases(APP)[0].status == "failed"


def test_a_bluegreen_deploy_under_load_fails_no_request(
    cluster: ClusterSettings, client: FerryClient, site: tuple[Path, str]
) -> None:
    app_dir, image = site
    blues = serving(client)
    write_toml(app_dir, "v3", 'strategy = "bluegreen"\nrelease_command = "true"\n')
    out, stats = deploy_under_load(cluster, app_dir, "--image", image)
    assert out.startswith("0\n"), out
    assert "release_command succeeded" in out, out
    assert stats["failed"] == 0 and stats["ok"], stats
    greens = serving(client)
    assert len(greens) == len(blues) == 2
    assert not {m.id for m in greens} & {m.id for m in blues}  # every blue replaced
    assert all(m.state is MachineState.STARTED for m in greens)
    assert all(m.config.env["GREETING"] == "v3" and m.region == "ams" for m in greens)
    # Each green was created cordoned and uncordoned once healthy; each blue was
    # cordoned before it was stopped.
    assert not any(m.cordoned for m in greens)
    for green in greens:
        assert ("cordon", "uncordoned") in _events(client, green.id)
    for blue in blues:
        events = _events(client, blue.id)  # under the deploy's lease, as flyctl holds one
        assert events.index(("lease", "held")) < events.index(("cordon", "cordoned")), events
        assert events.index(("cordon", "cordoned")) < events.index(("stop", "requested")), events
    latest = client.list_releases(APP)[0]
    assert (latest.status, latest.strategy, latest.image) == ("complete", "bluegreen", image)


def test_rollback_deploys_an_earlier_release_again_and_refuses_one_that_does_not_exist(
    cluster: ClusterSettings, client: FerryClient, site: tuple[Path, str]
) -> None:
    before = [(m.id, m.instance_id) for m in serving(client)]
    missing = ferry(cluster, "releases", "rollback", "99", "-a", APP)
    assert missing.returncode == 1 and "has no release v99" in missing.stderr, missing.stderr
    assert [(m.id, m.instance_id) for m in serving(client)] == before

    result = ferry(cluster, "releases", "rollback", "1", "-a", APP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(m.config.env["GREETING"] == "v1" for m in serving(client))
    for machine in serving(client):  # updated under a lease, given back at the end
        events = _events(client, machine.id)
        assert events.index(("lease", "held")) < events.index(("lease", "released")), events
        with pytest.raises(ApiError) as gone:
            client.get_lease(APP, machine.id)
        assert gone.value.status == 404
    listing = ferry(cluster, "releases", "-a", APP)
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert "VERSION" in lines[0] and "rollback to v1" in listing.stdout
    latest = client.list_releases(APP)[0]
    assert latest.description == "rollback to v1" and latest.status == "complete"
