"""Machines that stay in their box: user namespaces, capabilities, masks and limits,
against real runc, overlayfs, idmapped mounts and cgroups."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.net.iproute import NETNS_DIR, delete_netns, ip
from ferry.runtime.driver import ContainerSpec, LocalImage
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRange, IdRangeAllocator

from .conftest import container_spec

pytestmark = pytest.mark.integration

DONE = "--done--"


@pytest.fixture
def ranges(tmp_path: Path) -> IdRangeAllocator:
    return IdRangeAllocator(tmp_path / "id-ranges.json")


def run_to_end(driver: RuncDriver, spec: ContainerSpec, timeout: float = 20.0) -> str:
    """Start ``spec`` (whose script ends by echoing ``DONE``); return its output."""
    driver.start(spec)
    log = driver.log_path(spec.container_id)
    deadline = time.monotonic() + timeout
    while DONE not in log.read_text():
        assert time.monotonic() < deadline, f"no end of script: {log.read_text()}"
        time.sleep(0.02)
    return log.read_text()


def in_box(image: LocalImage, script: str, id_range: IdRange, **changes: object) -> ContainerSpec:
    spec = container_spec(image, f"{script}; echo {DONE}; sleep 600", id_range=id_range)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def host_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of a host process, from /proc/<pid>/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_root_inside_is_a_different_unprivileged_host_uid_in_each_machine(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    first, second = ranges.acquire("m-one"), ranges.acquire("m-two")
    pids = []
    for id_range in (first, second):
        spec = in_box(busybox_image, "echo inside=$(id -u):$(id -g)", id_range)
        assert "inside=0:0" in run_to_end(driver, spec)
        status = driver.inspect(spec.container_id)
        assert status.pid is not None
        pids.append(status.pid)
        # its root filesystem is reachable by its own root only (and the host's)
        guard = driver.rootfs_path(spec.container_id).parent.stat()
        assert (guard.st_uid, guard.st_mode & 0o777) == (id_range.host_id, 0o700)

    assert host_ids(pids[0]) == (first.host_id, first.host_id)
    assert host_ids(pids[1]) == (second.host_id, second.host_id)
    assert first.host_id != second.host_id and min(first.host_id, second.host_id) >= 100_000


def test_machine_root_cannot_read_a_host_file_even_one_mounted_into_it(
    busybox_image: LocalImage, tmp_path: Path, ranges: IdRangeAllocator
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host-only-words\n")
    secret.chmod(0o600)  # root's, as most of a host's private files are
    # a host file the machine can reach: the driver binds it on /etc/resolv.conf
    driver = RuncDriver(tmp_path / "state", cgroup_parent=f"ferry-iso-{os.getpid()}")
    driver.resolv_conf = secret
    try:
        spec = in_box(
            busybox_image,
            f"cat /etc/resolv.conf; echo read=$?; ls {secret} || echo no-such-path",
            ranges.acquire("m-reader"),
        )
        output = run_to_end(driver, spec)
    finally:
        for status in driver.list():
            driver.destroy(status.container_id)
        driver.cleanup()

    assert "host-only-words" not in output
    assert "Permission denied" in output and "read=1" in output
    assert "no-such-path" in output


def test_processes_of_the_host_and_of_other_machines_are_invisible(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    neighbour = in_box(busybox_image, "echo the-neighbour", ranges.acquire("m-neighbour"))
    run_to_end(driver, neighbour)
    script = "for p in /proc/[0-9]*; do echo pid=${p#/proc/} $(tr '\\0' ' ' < $p/cmdline); done"
    output = run_to_end(driver, in_box(busybox_image, script, ranges.acquire("m-looker")))

    seen = [line for line in output.splitlines() if line.startswith("pid=")]
    assert 1 <= len(seen) <= 4, seen  # its shell, the loop's subshells: nothing else
    assert seen[0].startswith("pid=1 sh -c for p in"), seen  # itself, as PID 1
    assert not any("pytest" in line or "the-neighbour" in line for line in seen), seen


def test_loading_a_kernel_module_is_not_permitted(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    # busybox insmod reads the file and calls init_module(2): an ELF header is enough
    script = "printf '\\177ELF' > /m.ko; insmod /m.ko; echo insmod=$?"
    output = run_to_end(driver, in_box(busybox_image, script, ranges.acquire("m-module")))

    assert "insmod=1" in output
    assert "Operation not permitted" in output


def test_proc_and_sys_are_masked_as_docker_masks_them(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    script = (
        "for f in /proc/keys /proc/timer_list /proc/interrupts; do "
        "echo $f=$(wc -c < $f); done; "
        "echo firmware=$(ls /sys/firmware | wc -l); "
        "echo 1 > /proc/sys/vm/drop_caches; echo procsys=$?; "
        "echo x > /sys/kernel/uevent_helper; echo sys=$?; "
        "grep -c ^ /proc/self/uid_map"
    )
    output = run_to_end(driver, in_box(busybox_image, script, ranges.acquire("m-masks")))

    for masked in ("/proc/keys=0", "/proc/timer_list=0", "/proc/interrupts=0", "firmware=0"):
        assert masked in output, output
    assert "procsys=1" in output and "sys=1" in output
    assert "Read-only file system" in output


def test_a_read_only_root_refuses_writes_but_tmp_takes_them(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    script = "echo x > /etc/changed; echo root=$?; echo x > /tmp/scratch && echo tmp=ok"
    spec = in_box(busybox_image, script, ranges.acquire("m-ro"), readonly_root=True)
    output = run_to_end(driver, spec)

    assert "root=1" in output and "Read-only file system" in output
    assert "tmp=ok" in output


def test_a_fork_bomb_stops_at_the_pids_limit(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    # bounded: 60 tries against a limit of 20, each child only sleeping; the subshell
    # dies at its first failed fork, the shell then counts with builtins only
    script = "(for i in $(seq 60); do sleep 300 & done) 2>&1; set -- /proc/[0-9]*; echo running=$#"
    spec = in_box(busybox_image, script, ranges.acquire("m-bomb"), pids_limit=20)
    output = run_to_end(driver, spec)
    cgroup = Path("/sys/fs/cgroup/pids") / driver.cgroups_path(spec.container_id).lstrip("/")

    assert "can't fork" in output
    running = int(output.split("running=")[1].split()[0])
    assert 10 < running <= 20, output
    assert (cgroup / "pids.max").read_text().strip() == "20"


def test_files_of_the_image_and_of_ferry_belong_to_root_inside_and_the_image_is_unchanged(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    id_range = ranges.acquire("m-owner")
    script = (
        "ls -ln /bin/busybox /etc/app/app.conf; ls -lnd /etc/app /; "
        "echo more >> /etc/app/app.conf && touch /etc/app/new && echo wrote=ok; "
        "chown 1000:1000 /etc/app/new && echo chown=ok"
    )
    spec = in_box(busybox_image, script, id_range, files=(("/etc/app/app.conf", b"a=1\n"),))
    output = run_to_end(driver, spec)
    upper = driver.state_dir / "containers" / spec.container_id / "upper"

    owners = [line.split()[2:4] for line in output.splitlines() if line.startswith(("-rw", "drw"))]
    assert owners == [["0", "0"]] * 4, output
    assert "wrote=ok" in output and "chown=ok" in output
    assert (upper / "etc" / "app" / "new").stat().st_uid == id_range.to_host(1000)
    # the shared image is never chowned: each machine sees it through its own mapping
    assert (busybox_image.rootfs / "bin" / "busybox").stat().st_uid == 0


@pytest.fixture
def agent_made_netns() -> Iterator[Path]:
    """A named network namespace with a dummy link, made as the agent makes them:
    outside any machine's user namespace."""
    name = f"fiso-{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("link", "set", "lo", "up", netns=name)
        ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1", netns=name)
        yield NETNS_DIR / name
    finally:
        delete_netns(name)


def test_sys_shows_the_machines_own_network_namespace_made_outside_its_user_namespace(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator, agent_made_netns: Path
) -> None:
    spec = in_box(
        busybox_image,
        "echo nets=$(ls /sys/class/net | tr '\\n' ,)",
        ranges.acquire("m-sys"),
        netns_path=agent_made_netns,
    )
    output = run_to_end(driver, spec)

    assert "nets=lo,probe0,probe1," in output


def test_root_in_a_user_namespace_listens_on_port_80_and_may_ping_in_an_agent_made_netns(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator, agent_made_netns: Path
) -> None:
    # its capabilities do not reach a network namespace made outside its user
    # namespace: Docker's sysctls (any port, any group may ping) make up for it
    # (busybox's ping wants a raw socket: the range is read instead, from the host)
    script = "httpd -p 80 -h / && echo listening=80"
    spec = in_box(busybox_image, script, ranges.acquire("m-port"), netns_path=agent_made_netns)
    output = run_to_end(driver, spec)

    ping_range = subprocess.run(
        ["nsenter", f"--net={agent_made_netns}", "cat", "/proc/sys/net/ipv4/ping_group_range"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert "listening=80" in output, output
    assert ping_range == ["0", "2147483647"]


def test_an_image_user_outside_the_machines_ids_is_refused_with_a_reason(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    spec = in_box(busybox_image, "true", ranges.acquire("m-big-uid"))
    image = dataclasses.replace(
        busybox_image, config=dataclasses.replace(busybox_image.config, user="70000:70000")
    )

    with pytest.raises(RuntimeFailure, match="user '70000:70000' has id 70000"):
        driver.start(dataclasses.replace(spec, image=image))
    assert driver.list() == []


def test_machines_started_and_destroyed_at_once_each_get_their_own_mapping(
    driver: RuncDriver, busybox_image: LocalImage, ranges: IdRangeAllocator
) -> None:
    # the agent runs steps on several threads: helpers, mounts and ranges must hold
    specs = [in_box(busybox_image, "echo up", ranges.acquire(f"m-crowd-{n}")) for n in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = list(pool.map(driver.start, specs))
        expected = {s.container_id: s.id_range for s in specs}
        for status in started:
            assert status.pid is not None
            id_range = expected[status.container_id]
            assert id_range is not None
            assert host_ids(status.pid) == (id_range.host_id, id_range.host_id)
        list(pool.map(driver.destroy, [s.container_id for s in specs]))

    assert driver.list() == []
    assert not driver.mounts_dir.exists()
