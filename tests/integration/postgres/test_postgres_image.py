"""The Postgres image, built for real from Debian's packages, run as a Ferry machine runs.

The first run builds the image (mmdebstrap, about a minute and a half) into the
cache (``$FERRY_CACHE_DIR/postgres``, default ``/var/cache/ferry/postgres``);
later runs reuse it. The machine runs under runc in a user namespace of its own
with tini in front, as the agent starts machines, with a single-member Patroni
cluster on its own etcd member, advertised on ``::1`` (an IPv6 address, as 6PN is).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.postgres.image import default_cache_dir, ensure_image, publish_image
from ferry.runtime.driver import ContainerSpec, ContainerState, LocalImage
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.process import merge_env
from ferry.runtime.runc import RuncDriver
from ferry.runtime.runc_exec import CommandResult
from ferry.runtime.userns import IdRangeAllocator

from ..images import RunningRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TINI = Path("/usr/bin/tini-static")
OPERATOR_PASSWORD = f"op-{uuid.uuid4().hex}"
SECRETS = {
    "SU_PASSWORD": f"su-{uuid.uuid4().hex}",
    "REPL_PASSWORD": f"repl-{uuid.uuid4().hex}",
    "OPERATOR_PASSWORD": OPERATOR_PASSWORD,
}
REST_STATUS = (
    "import json, urllib.request; "
    "print(urllib.request.urlopen('http://[::1]:8008/patroni', timeout=2).read().decode())"
)


@pytest.fixture(scope="module")
def postgres_image(
    registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory
) -> LocalImage:
    """The image from the cache (built on first use), pushed and unpacked as an agent does."""
    built = ensure_image(default_cache_dir(), say=print)
    print(f"image {built.tag}: {built.seconds:.1f} s (base built: {built.built_base})")
    reference = publish_image(built, registry.address)
    store = RegistryImageStore(
        tmp_path_factory.mktemp("pg-image-cache"), insecure_registries=[registry.address]
    )
    return store.ensure(reference)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[RuncDriver]:
    runc_driver = RuncDriver(tmp_path / "state", cgroup_parent=f"ferry-pgtest-{os.getpid()}")
    try:
        yield runc_driver
    finally:
        for status in runc_driver.list():
            runc_driver.destroy(status.container_id)
        runc_driver.cleanup()


def machine_spec(image: LocalImage, env: dict[str, str], ranges: IdRangeAllocator) -> ContainerSpec:
    """A spec as the agent makes one: image entrypoint and env, tini, own user namespace."""
    container_id = f"pg-{uuid.uuid4().hex[:10]}"
    return ContainerSpec(
        container_id=container_id,
        image=image,
        process_args=image.config.entrypoint + image.config.cmd,
        env=merge_env(image.config.env, env),
        memory_mb=512,
        init_binary=TINI,
        id_range=ranges.acquire(container_id),
    )


def run_in(driver: RuncDriver, container_id: str, *argv: str) -> CommandResult:
    return driver.exec_command(container_id, list(argv), stdin=b"", timeout=10, limit=1 << 16)


def wait_until(what: str, check: object, driver: RuncDriver, cid: str, limit: float) -> float:
    """Poll ``check()`` (bounded by ``limit`` seconds); return when it first held."""
    assert callable(check)
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} not within {limit} s; log:\n{driver.log_path(cid).read_text()[-3000:]}"
            )
        time.sleep(0.1)
    return time.monotonic()


def test_a_machine_of_the_image_runs_postgres_as_leader_under_patroni(
    driver: RuncDriver, postgres_image: LocalImage, tmp_path: Path
) -> None:
    ranges = IdRangeAllocator(tmp_path / "id-ranges.json")
    env = {"FLY_PRIVATE_IP": "::1", "FLY_APP_NAME": "pgtest", "FLY_MACHINE_ID": "m1", **SECRETS}
    spec = machine_spec(postgres_image, env, ranges)
    cid = spec.container_id

    started = time.monotonic()
    driver.start(spec)
    accepting = wait_until(
        "pg_isready",
        lambda: run_in(driver, cid, "pg_isready", "-q", "-h", "::1").exit_code == 0,
        driver,
        cid,
        120,
    )
    print(f"machine start -> Postgres accepts connections: {accepting - started:.2f} s")

    def patroni_status() -> dict[str, object]:
        done = run_in(driver, cid, "/usr/bin/python3", "-c", REST_STATUS)
        return json.loads(done.stdout) if done.exit_code == 0 else {}

    def is_running_leader() -> bool:
        status = patroni_status()
        # Patroni 3.0 says "master" (4.x: "primary"); "running" once bootstrap is done.
        return status.get("role") in ("master", "primary") and status.get("state") == "running"

    leader = wait_until("Patroni leader", is_running_leader, driver, cid, 60)
    print(
        f"machine start -> Patroni reports the member as running leader: {leader - started:.2f} s"
    )
    status = patroni_status()
    assert status["patroni"]["scope"] == "pgtest"  # type: ignore[index]

    query = run_in(
        driver,
        cid,
        "env",
        f"PGPASSWORD={OPERATOR_PASSWORD}",
        "psql",
        "-h",
        "::1",
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-tAc",
        "select current_user, rolsuper, pg_is_in_recovery()"
        " from pg_roles where rolname = current_user",
    )
    assert query.exit_code == 0, query.stderr
    assert query.stdout.decode().strip() == "postgres|t|f"

    processes = run_in(driver, cid, "ps", "-eo", "user:16,args")
    table = processes.stdout.decode()
    postgres_lines = [
        line for line in table.splitlines() if "postgres:" in line or "bin/postgres" in line
    ]
    assert postgres_lines and all(line.startswith("postgres ") for line in postgres_lines), table
    assert any(line.startswith("etcd ") for line in table.splitlines()), table
    for secret in SECRETS.values():
        assert secret not in table  # no password on any command line
        assert secret not in driver.log_path(cid).read_text()

    stopped = driver.stop(cid, "SIGTERM", timeout=30)
    assert stopped.state is ContainerState.EXITED
    assert "patroni exited with code 0" in driver.log_path(cid).read_text()
    ranges.release(cid)


def test_a_machine_without_its_secrets_stops_and_names_the_missing_one(
    driver: RuncDriver, postgres_image: LocalImage, tmp_path: Path
) -> None:
    ranges = IdRangeAllocator(tmp_path / "id-ranges.json")
    spec = machine_spec(postgres_image, {"FLY_PRIVATE_IP": "::1"}, ranges)

    driver.start(spec)
    wait_until(
        "exit",
        lambda: driver.inspect(spec.container_id).state is ContainerState.EXITED,
        driver,
        spec.container_id,
        30,
    )

    assert driver.inspect(spec.container_id).exit_code == 2
    log = driver.log_path(spec.container_id).read_text()
    assert "SU_PASSWORD is not set: give it as a secret of the Postgres app" in log
    ranges.release(spec.container_id)
