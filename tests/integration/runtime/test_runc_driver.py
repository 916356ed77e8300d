"""The runc driver against real runc, overlayfs and cgroups."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.driver import ContainerState, LocalImage
from ferry.runtime.host_os import mount_overlay
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.runc import RuncDriver

from ..images import RunningRegistry, build_busybox_image, push_image
from .conftest import container_spec

pytestmark = pytest.mark.integration

# Prints "armed" once its TERM trap is set: the shell is PID 1 (no init in these specs),
# and a PID 1 ignores a signal it has no handler for.
LONG_RUNNER = "trap 'exit 143' TERM; echo armed; sleep 600 & wait"


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def mounted(path: Path) -> bool:
    return f" {path} " in Path("/proc/self/mountinfo").read_text()


def test_started_container_runs_with_its_env_and_logs_its_output(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(
        busybox_image,
        f"echo greeting=$GREETING host=$(hostname); {LONG_RUNNER}",
        env={"GREETING": "hello"},
        labels={"machine": "m1"},
    )

    started = driver.start(spec)
    wait_for(lambda: "greeting" in driver.log_path(spec.container_id).read_text())

    assert started.state is ContainerState.RUNNING
    status = driver.inspect(spec.container_id)
    assert status.state is ContainerState.RUNNING
    assert status.pid == started.pid
    assert status.labels == {"machine": "m1"}
    assert "greeting=hello host=machine" in driver.log_path(spec.container_id).read_text()


def test_stop_with_sigterm_records_the_exit_code(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, LONG_RUNNER)
    driver.start(spec)
    wait_for(lambda: "armed" in driver.log_path(spec.container_id).read_text())

    stopped = driver.stop(spec.container_id, "SIGTERM", timeout=5)

    assert stopped.state is ContainerState.EXITED
    assert stopped.exit_code == 143
    assert driver.inspect(spec.container_id).exit_code == 143


def test_stop_escalates_to_sigkill_when_the_signal_is_ignored(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, "trap '' TERM INT; echo trapped; sleep 600 & wait")
    driver.start(spec)
    # The signal must come after the trap: a shell not yet past it dies of SIGINT (130).
    wait_for(lambda: "trapped" in driver.log_path(spec.container_id).read_text())

    began = time.monotonic()
    stopped = driver.stop(spec.container_id, "SIGINT", timeout=0.3)

    assert stopped.exit_code == 137
    assert time.monotonic() - began < 5


def test_process_exit_code_is_reported(driver: RuncDriver, busybox_image: LocalImage) -> None:
    spec = container_spec(busybox_image, "exit 3")
    driver.start(spec)

    wait_for(lambda: driver.inspect(spec.container_id).state is ContainerState.EXITED)

    assert driver.inspect(spec.container_id).exit_code == 3


def test_memory_limit_is_enforced_by_the_cgroup(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(
        busybox_image, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 600", memory_mb=64
    )
    driver.start(spec)
    cgroup = Path("/sys/fs/cgroup/memory") / driver.cgroups_path(spec.container_id).lstrip("/")

    assert int((cgroup / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024

    hog = container_spec(busybox_image, "head -c 200m /dev/zero | tail > /dev/null", memory_mb=64)
    driver.start(hog)
    wait_for(lambda: driver.inspect(hog.container_id).state is ContainerState.EXITED, 20)
    assert driver.inspect(hog.container_id).exit_code != 0


def test_containers_share_the_image_but_write_to_their_own_layer(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    first = container_spec(busybox_image, f"echo one > /marker; {LONG_RUNNER}")
    second = container_spec(busybox_image, f"cat /marker 2>&1; {LONG_RUNNER}")
    driver.start(first)
    state = driver.state_dir / "containers"
    wait_for(lambda: (state / first.container_id / "upper" / "marker").exists())
    driver.start(second)
    wait_for(lambda: driver.log_path(second.container_id).read_text() != "")

    assert (state / first.container_id / "upper" / "marker").read_text() == "one\n"
    assert not (state / second.container_id / "upper" / "marker").exists()
    assert not (busybox_image.rootfs / "marker").exists()
    assert "No such file" in driver.log_path(second.container_id).read_text()


def test_destroy_leaves_no_mount_directory_runc_state_or_cgroup(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, LONG_RUNNER)
    driver.start(spec)
    container_dir = driver.state_dir / "containers" / spec.container_id
    rootfs = driver.rootfs_path(spec.container_id)
    cgroup = Path("/sys/fs/cgroup/memory") / driver.cgroups_path(spec.container_id).lstrip("/")
    assert mounted(rootfs) and cgroup.is_dir()

    driver.destroy(spec.container_id)
    driver.destroy(spec.container_id)  # idempotent

    assert not mounted(rootfs) and not rootfs.exists()
    assert not container_dir.exists()
    assert not (driver.runc_root / spec.container_id).exists()
    assert not cgroup.exists()
    assert driver.inspect(spec.container_id).state is ContainerState.MISSING


def test_failed_start_says_why_and_leaves_nothing_behind(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, "unused")
    broken = type(spec)(**{**spec.__dict__, "process_args": ("/no/such/binary",)})

    with pytest.raises(RuntimeFailure, match="no/such/binary"):
        driver.start(broken)

    assert driver.list() == []


def test_a_new_driver_adopts_containers_started_by_a_previous_one(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, LONG_RUNNER, labels={"machine": "m2"})
    driver.start(spec)

    restarted = RuncDriver(driver.state_dir, cgroup_parent=driver.cgroup_parent)
    [adopted] = restarted.list()

    assert adopted.container_id == spec.container_id
    assert adopted.state is ContainerState.RUNNING
    assert adopted.labels == {"machine": "m2"}
    wait_for(lambda: "armed" in driver.log_path(spec.container_id).read_text())
    assert restarted.stop(spec.container_id, "SIGTERM", timeout=5).exit_code == 143


def test_starting_an_existing_container_is_refused_and_keeps_it_running(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(busybox_image, LONG_RUNNER)
    driver.start(spec)

    with pytest.raises(RuntimeFailure, match="already exists"):
        driver.start(spec)
    assert driver.inspect(spec.container_id).state is ContainerState.RUNNING


def test_destroy_cleans_up_a_container_half_created_before_a_crash(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    # what an agent killed between the overlay mount and spawning runc leaves behind
    container_dir = driver.state_dir / "containers" / "half-made"
    rootfs = driver.rootfs_path("half-made")
    for sub in ("upper", "work"):
        (container_dir / sub).mkdir(parents=True)
    rootfs.mkdir(parents=True)
    mount_overlay(busybox_image.rootfs, container_dir / "upper", container_dir / "work", rootfs)

    [leftover] = driver.list()
    assert leftover.state is ContainerState.EXITED and leftover.exit_code is None
    driver.destroy("half-made")

    assert not mounted(rootfs) and not rootfs.exists()
    assert not container_dir.exists()


def test_an_image_user_named_in_its_passwd_runs_with_its_ids_groups_and_home(
    driver: RuncDriver, registry: RunningRegistry, tmp_path: Path
) -> None:
    passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n"
    group = "root:x:0:\napp:x:1234:\nstaff:x:77:app\n"
    layout = build_busybox_image(
        tmp_path / "build", user="app", files={"etc/passwd": passwd, "etc/group": group}
    )
    reference = push_image(layout, registry.address, f"named-user-{uuid.uuid4().hex[:8]}")
    store = RegistryImageStore(tmp_path / "cache", insecure_registries=[registry.address])
    image = store.ensure(reference)
    spec = container_spec(image, f"echo uid=$(id -u) gid=$(id -g) groups=$(id -G) HOME=$HOME; "
                                 f"{LONG_RUNNER}")  # fmt: skip

    driver.start(spec)
    wait_for(lambda: "uid=" in driver.log_path(spec.container_id).read_text())

    line = driver.log_path(spec.container_id).read_text()
    assert "uid=1234 gid=1234 groups=1234 77 HOME=/home/app" in line, line


def test_an_image_user_its_passwd_does_not_list_fails_to_start_and_says_so(
    driver: RuncDriver, registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = build_busybox_image(tmp_path / "build", user="ghost")
    reference = push_image(layout, registry.address, f"ghost-user-{uuid.uuid4().hex[:8]}")
    store = RegistryImageStore(tmp_path / "cache", insecure_registries=[registry.address])
    spec = container_spec(store.ensure(reference), "id")

    with pytest.raises(RuntimeFailure, match="'ghost'"):
        driver.start(spec)  # not silently root

    assert driver.list() == []


def test_machines_run_under_the_default_seccomp_filter(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = container_spec(
        busybox_image, f"grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; {LONG_RUNNER}"
    )

    driver.start(spec)
    wait_for(lambda: "Seccomp:" in driver.log_path(spec.container_id).read_text())

    status = driver.log_path(spec.container_id).read_text()
    assert "Seccomp:\t2" in status, status  # 2: a filter is installed
    assert "NoNewPrivs:\t1" in status
