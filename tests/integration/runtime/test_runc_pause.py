"""runc pause/resume through the driver: frozen is reported as paused, and a frozen
container can still be stopped and destroyed (it is thawed before the kill)."""

from __future__ import annotations

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.driver import ContainerState, LocalImage
from ferry.runtime.host_os import CGROUP_ROOT
from ferry.runtime.runc import RuncDriver

from .conftest import container_spec

pytestmark = pytest.mark.integration

IDLE = "trap 'exit 143' TERM; sleep 600 & wait"


def test_pause_and_resume_are_seen_by_inspect_and_idempotent(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, IDLE)
    pid = driver.start(spec).pid
    assert driver.pause(spec.container_id).state is ContainerState.PAUSED
    assert driver.pause(spec.container_id).state is ContainerState.PAUSED
    assert driver.inspect(spec.container_id).state is ContainerState.PAUSED
    assert driver.list()[0].state is ContainerState.PAUSED
    resumed = driver.resume(spec.container_id)
    assert (resumed.state, resumed.pid) == (ContainerState.RUNNING, pid)
    assert driver.resume(spec.container_id).state is ContainerState.RUNNING


def test_a_paused_container_is_thawed_to_stop_and_to_destroy(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    stopped = container_spec(busybox_image, IDLE)
    driver.start(stopped)
    driver.pause(stopped.container_id)
    status = driver.stop(stopped.container_id, "SIGTERM", timeout=5)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 143)

    destroyed = container_spec(busybox_image, IDLE)
    driver.start(destroyed)
    driver.pause(destroyed.container_id)
    driver.destroy(destroyed.container_id)
    assert driver.inspect(destroyed.container_id).state is ContainerState.MISSING
    cgroup = driver.cgroups_path(destroyed.container_id).lstrip("/")
    assert not (CGROUP_ROOT / "freezer" / cgroup).exists()


def test_an_exited_container_cannot_be_paused(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, "exit 0")
    driver.start(spec)
    driver.stop(spec.container_id, "SIGTERM", timeout=5)
    with pytest.raises(RuntimeFailure, match="only a running one can pause"):
        driver.pause(spec.container_id)
