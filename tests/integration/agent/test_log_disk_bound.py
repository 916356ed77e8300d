"""A chatty machine's log stays small on disk: the shipper frees what it shipped.

A separate process appends 20 MiB of numbered lines to a real ``RuncDriver``
log file through an ``O_APPEND`` descriptor (as a container does) while the
real ``LogShipper`` ships to an in-memory sink. Run on each filesystem the
agent's state dir may sit on: the test's own (ext4 here), tmpfs and overlay.
A last test has a real busybox container write its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ferry.agent.logship import LogShipper
from ferry.agent.reconcile import container_id
from ferry.runtime.driver import LocalImage
from ferry.runtime.host_os import mount_overlay, unmount
from ferry.runtime.runc import RuncDriver

from ...agent_fakes import RecordingSink, host_machine
from ..runtime.conftest import container_spec

MIB = 1024 * 1024
TOTAL_BYTES = 20 * MIB
LINE_BYTES = 100
LINE_COUNT = TOTAL_BYTES // LINE_BYTES + 1
ALLOCATED_BOUND = 3 * MIB
MACHINE = host_machine()

# Paced at about 10 MB/s in 25 KB writes: faster than a real app, slow enough that
# the shipper (running flat out here) keeps up, so the bound measures the punching.
WRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
count, width = int(sys.argv[2]), int(sys.argv[3])
for first in range(0, count, 256):
    numbers = range(first, min(first + 256, count))
    os.write(fd, "".join(f"line {i:08d} ".ljust(width - 1, ".") + "\\n" for i in numbers).encode())
    time.sleep(0.002)
os.close(fd)
"""


def expected_lines() -> list[str]:
    return [f"line {i:08d} ".ljust(LINE_BYTES - 1, ".") for i in range(LINE_COUNT)]


def fs_type(path: Path) -> str:
    done = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture(params=["state-dir", "tmpfs", "overlay"])
def state_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A fresh state dir on the test's filesystem, on tmpfs, or inside an overlay mount."""
    if request.param == "state-dir":
        yield tmp_path / "state"
        return
    if request.param == "tmpfs":
        shm = Path("/dev/shm")
        if fs_type(shm) != "tmpfs":
            pytest.skip("no tmpfs at /dev/shm")
        directory = shm / f"ferry-log-test-{os.getpid()}"
        directory.mkdir()
        try:
            yield directory / "state"
        finally:
            subprocess.run(["rm", "-rf", str(directory)], check=True)
        return
    layers = {name: tmp_path / name for name in ("lower", "upper", "work", "merged")}
    for layer in layers.values():
        layer.mkdir()
    mount_overlay(layers["lower"], layers["upper"], layers["work"], layers["merged"])
    try:
        yield layers["merged"] / "state"
    finally:
        unmount(layers["merged"])


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_chatty_log_stays_small_on_disk_and_every_line_arrives_in_order(
    state_dir: Path,
) -> None:
    driver = RuncDriver(state_dir, seccomp_profile=None)
    cid = container_id(MACHINE)
    path = driver.log_path(cid)
    path.parent.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(LINE_COUNT), str(LINE_BYTES)]
    )
    shipper, sink = LogShipper(driver), RecordingSink()
    # What the disk holds beyond the lines not shipped yet: the shipper's promise is to
    # free what it shipped, so this stays small however far a loaded machine lets the
    # writer run ahead of it (the unshipped tail itself is the writer's, not a leak).
    most_kept_after_shipping = 0
    deadline = time.monotonic() + 120
    try:
        while writer.poll() is None or len(sink.lines) < LINE_COUNT:
            assert time.monotonic() < deadline, "the shipper did not catch up"
            shipper.ship([MACHINE], sink, "ams-1")
            if path.exists():
                held = allocated(path)
                # Read after the allocation: the file only grows, so this never
                # overstates what was shipped and freeable at that moment.
                unshipped = os.stat(path).st_size - len(sink.lines) * LINE_BYTES
                most_kept_after_shipping = max(most_kept_after_shipping, held - unshipped)
    finally:
        writer.kill()
        writer.wait()

    assert writer.returncode == 0
    size = os.stat(path).st_size
    print(
        f"\n{fs_type(path)}: size {size / MIB:.1f} MiB, shipped lines kept on disk at most "
        f"{most_kept_after_shipping / MIB:.2f} MiB, now {allocated(path) / MIB:.2f} MiB"
    )
    assert sink.lines == expected_lines()
    assert size >= TOTAL_BYTES
    assert most_kept_after_shipping < ALLOCATED_BOUND
    assert allocated(path) < ALLOCATED_BOUND  # everything shipped: (almost) nothing kept
    assert path.read_bytes()[-LINE_BYTES:].decode().rstrip("\n") == sink.lines[-1]


def test_an_outage_of_the_control_plane_loses_no_line(tmp_path: Path) -> None:
    driver = RuncDriver(tmp_path / "state", seccomp_profile=None)
    cid = container_id(MACHINE)
    path = driver.log_path(cid)
    path.parent.mkdir()
    lines = expected_lines()
    shipper, sink = LogShipper(driver), RecordingSink()
    half = len(lines) // 2
    with path.open("ab") as log:
        log.write("".join(f"{line}\n" for line in lines[:half]).encode())
        sink.down = True
        for _ in range(100):
            shipper.ship([MACHINE], sink, "ams-1")
        assert allocated(path) >= half * LINE_BYTES  # nothing unshipped was freed
        log.write("".join(f"{line}\n" for line in lines[half:]).encode())

    sink.down = False
    for _ in range(1000):  # 256 KiB a call: 80 calls ship it all
        shipper.ship([MACHINE], sink, "ams-1")
        if len(sink.lines) >= len(lines):
            break

    assert sink.lines == lines
    assert allocated(path) < ALLOCATED_BOUND


def test_a_real_container_log_is_bounded_while_it_writes(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    count = 60_000
    script = (
        f"i=0; while [ $i -lt {count} ]; do "
        'echo "line $i ......................................................."; '
        "i=$((i+1)); done; sleep 600"
    )
    spec = replace(container_spec(busybox_image, script), container_id=container_id(MACHINE))
    driver.start(spec)
    path = driver.log_path(spec.container_id)
    shipper, sink = LogShipper(driver), RecordingSink()
    most_kept_after_shipping, shipped_bytes, counted = 0, 0, 0
    deadline = time.monotonic() + 60
    while len(sink.lines) < count:
        assert time.monotonic() < deadline, f"only {len(sink.lines)} lines shipped"
        shipper.ship([MACHINE], sink, "ams-1")
        shipped_bytes += sum(len(line) + 1 for line in sink.lines[counted:])
        counted = len(sink.lines)
        held = allocated(path)  # as in the test above: beyond the unshipped tail
        unshipped = os.stat(path).st_size - shipped_bytes
        most_kept_after_shipping = max(most_kept_after_shipping, held - unshipped)

    print(
        f"\ncontainer: size {os.stat(path).st_size / MIB:.1f} MiB, "
        f"shipped lines kept on disk at most {most_kept_after_shipping / MIB:.2f} MiB"
    )
    expected = [f"line {i} {'.' * 55}" for i in range(count)]
    assert sink.lines == expected
    assert os.stat(path).st_size >= count * 64
    assert most_kept_after_shipping < ALLOCATED_BOUND
    with path.open("rb") as log:
        log.seek(-100, os.SEEK_END)
        assert log.read().decode().endswith(f"{expected[-1]}\n")
