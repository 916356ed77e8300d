"""Volumes on real loop devices, mounted into real runc machines in user namespaces.

The control plane is its own process; the agent is the harness's real
``StepRunner`` plus the real ``VolumeKeeper`` (ext4 images, loop mounts,
fsfreeze snapshots) on a temporary state dir, wiped (unmounted, loop devices
freed) in ``finally``. Each assertion is something a user would see: a file
kept across restart, replacement and agent restart, ENOSPC at the size, a
volume in use that cannot be destroyed, a snapshot restored into a new volume.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.agent.reconcile import container_id
from ferry.agent.volume_loop import VolumeKeeper
from ferry.client import FerryClient
from ferry.errors import ApiError
from ferry.model import MachineState
from ferry.model.volume import Volume, VolumeState
from ferry.runtime.runc import RuncDriver
from ferry.storage.loop_volumes import GIB

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, machine_config, register_host

pytestmark = pytest.mark.integration

# Each start counts itself on the volume; the first writes the note, later ones read it.
SCRIPT = (
    "n=$(( $(cat /data/starts 2>/dev/null || echo 0) + 1 )); echo $n > /data/starts; "
    'if [ -f /data/note ]; then echo "start $n found $(cat /data/note)"; '
    'else echo $NOTE > /data/note && sync && echo "start $n wrote"; fi; exec sleep 600'
)


@pytest.fixture
def keeper(plane: ServerProcess, driver: RuncDriver, tmp_path: Path) -> Iterator[VolumeKeeper]:
    """The host's volume keeper; every mount and loop device it made is gone afterwards
    (the machines' containers first: their views of the volumes hold the loop devices)."""
    root = tmp_path / "volumes"
    with plane.client() as client:
        made = VolumeKeeper(client, HOST.host_id, root)
        try:
            yield made
        finally:
            for status in driver.list():
                driver.destroy(status.container_id)
            made.disk.wipe()
    deadline = time.monotonic() + 5.0  # the kernel frees an autoclear device a moment later
    while True:
        devices = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
        if str(root) not in devices.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert str(root) not in devices.stdout, devices.stdout  # no loop device left behind


def _ready(client: FerryClient, keeper: VolumeKeeper, app: str, volume: Volume) -> Volume:
    keeper.pass_once()
    shown = client.get_volume(app, volume.id)
    assert shown.state is VolumeState.CREATED, shown
    return shown


def _exec(driver: RuncDriver, agent: Agent, machine_id: str, command: str) -> tuple[int, str]:
    cid = container_id(agent.machine(machine_id))
    done = driver.exec_command(cid, ["sh", "-c", command], stdin=b"", timeout=60, limit=1 << 16)
    return done.exit_code, (done.stdout + done.stderr).decode()


def _gone(client: FerryClient, machine_id: str) -> bool:
    _, machines = client.watch_host_machines(HOST.host_id, since=0, timeout=0)
    return all(m.state is MachineState.DESTROYED for m in machines if m.id == machine_id)


def _log(driver: RuncDriver, agent: Agent, machine_id: str) -> str:
    return driver.log_path(container_id(agent.machine(machine_id))).read_text()


def test_a_volume_keeps_its_files_and_its_size_limit_through_restarts_and_replacement(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    keeper: VolumeKeeper,
) -> None:
    note = f"note-{uuid.uuid4().hex[:8]}"
    with plane.client() as client:
        register_host(client)
        client.create_app("db")
        keeper.pass_once()  # the host's capacity reaches the control plane
        volume = client.create_volume("db", {"name": "data", "region": "ams", "size_gb": 1})
        volume = _ready(client, keeper, "db", volume)
        mounts = [{"volume": volume.id, "path": "/data"}]
        machine_id = create_machine(
            client, "db", busybox_reference, SCRIPT, env={"NOTE": note}, mounts=mounts
        )
        agent = Agent(client, driver, images, volumes=keeper)
        agent.wait_output(machine_id, "start 1 wrote")

        # The machine's root wrote it; on disk it belongs to uid 0 (portable to the next).
        on_host = keeper.disk.mountpoint(volume.id) / "note"
        assert on_host.read_text().strip() == note and on_host.stat().st_uid == 0
        assert client.get_volume("db", volume.id).attached_machine_id == machine_id

        client.restart_machine("db", machine_id)
        agent.wait_output(machine_id, f"start 2 found {note}")

        config = machine_config(busybox_reference, SCRIPT, env={"NOTE": "x"}, mounts=mounts)
        client.update_machine("db", machine_id, config)  # a deploy's replacement
        agent.wait_output(machine_id, f"start 3 found {note}")

        # An agent restart: a new keeper and runner on the same state find it as it was.
        restarted = VolumeKeeper(client, HOST.host_id, keeper.disk.root)
        assert restarted.pass_once() == []
        assert (restarted.disk.mountpoint(volume.id) / "note").read_text().strip() == note

        with pytest.raises(ApiError) as refused:
            client.destroy_volume("db", volume.id)
        assert refused.value.status == 409 and machine_id in str(refused.value)

        code, output = _exec(
            driver, agent, machine_id, "dd if=/dev/zero of=/data/big bs=1M count=1100 2>&1"
        )
        assert code != 0 and "No space left on device" in output
        _exec(driver, agent, machine_id, "rm /data/big")

        grown = client.extend_volume("db", volume.id, 2)
        keeper.pass_once()
        if grown.needs_restart:  # this kernel lets no one grow a mounted ext4 here
            assert client.get_volume("db", volume.id).state is VolumeState.EXTENDING
            client.restart_machine("db", machine_id)
            agent.wait_output(machine_id, f"start 4 found {note}")
            keeper.pass_once()
        assert client.get_volume("db", volume.id).state is VolumeState.CREATED
        code, output = _exec(driver, agent, machine_id, "df -k /data | tail -1")
        assert code == 0 and int(output.split()[1]) * 1024 > 1.8 * GIB, output

        client.delete_machine("db", machine_id, force=True)
        agent.converge(lambda: _gone(client, machine_id))
        client.destroy_volume("db", volume.id)
        keeper.pass_once()
        assert client.get_volume("db", volume.id).state is VolumeState.DESTROYED
        assert not keeper.disk.has_image(volume.id) and not keeper.disk.is_mounted(volume.id)


def test_a_snapshot_of_a_volume_in_use_restores_into_a_new_volume_a_machine_can_read(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    keeper: VolumeKeeper,
) -> None:
    note = f"snap-{uuid.uuid4().hex[:8]}"
    with plane.client() as client:
        register_host(client)
        client.create_app("db")
        keeper.pass_once()
        volume = client.create_volume("db", {"name": "data", "region": "ams", "size_gb": 1})
        volume = _ready(client, keeper, "db", volume)
        writer = create_machine(
            client,
            "db",
            busybox_reference,
            SCRIPT,
            env={"NOTE": note},
            mounts=[{"volume": volume.id, "path": "/data"}],
        )
        agent = Agent(client, driver, images, volumes=keeper)
        agent.wait_output(writer, "start 1 wrote")

        snapshot = client.create_volume_snapshot("db", volume.id)
        keeper.pass_once()  # frozen while copied: the machine keeps running
        listed = client.list_volume_snapshots("db", volume.id)
        assert [(s.id, s.status.value) for s in listed] == [(snapshot.id, "created")]
        assert listed[0].size > 0

        copy = client.create_volume(
            "db", {"name": "copy", "snapshot_id": snapshot.id, "size_gb": 2}
        )
        assert copy.state is VolumeState.RESTORING
        copy = _ready(client, keeper, "db", copy)
        reader = create_machine(
            client,
            "db",
            busybox_reference,
            SCRIPT,
            env={"NOTE": "other"},
            mounts=[{"volume": copy.id, "path": "/data"}],
        )
        agent.wait_output(reader, f"start 2 found {note}")
        assert copy.size_gb == 2 and keeper.disk.filesystem_bytes(copy.id) == 2 * GIB
        assert _log(driver, agent, writer).count("wrote") == 1


def test_a_fork_to_another_region_carries_a_consistent_copy_across_hosts(
    plane: ServerProcess, tmp_path: Path
) -> None:
    """Two hosts' keepers: the source's sends its snapshot through the control plane, the
    target's fetches it, restores the fork, and the fork holds the source's files."""
    with plane.client() as client:
        register_host(client)
        client.register_host(
            host_id="iad-1",
            region="iad",
            address="127.0.0.1",
            cpus=2,
            memory_mb=2048,
            machine_subnet="10.2.0.0/24",
        )
        client.create_app("db")
        ams = VolumeKeeper(client, HOST.host_id, tmp_path / "ams")
        iad = VolumeKeeper(client, "iad-1", tmp_path / "iad")
        try:
            for keeper in (ams, iad):
                keeper.pass_once()
            source = client.create_volume("db", {"name": "data", "region": "ams", "size_gb": 1})
            _ready(client, ams, "db", source)
            data = ams.disk.mountpoint(source.id)
            (data / "rows").write_text("42 rows\n")
            (data / "big").write_bytes(b"\1" * (8 << 20))

            fork = client.create_volume(
                "db", {"name": "data", "region": "iad", "size_gb": 1, "source_volume_id": source.id}
            )
            assert fork.state is VolumeState.HYDRATING and fork.host_id == "iad-1"
            passes = 0
            while client.get_volume("db", fork.id).state is not VolumeState.CREATED:
                assert passes < 10, client.get_volume("db", fork.id)
                ams.pass_once()  # snapshot, then send
                iad.pass_once()  # fetch, then restore and mount
                passes += 1

            copy = iad.disk.mountpoint(fork.id)
            assert (copy / "rows").read_text() == "42 rows\n"
            assert (copy / "big").stat().st_size == 8 << 20
            shown = client.get_volume("db", fork.id)
            assert (shown.region, shown.source_volume_id) == ("iad", source.id)
            held = list(plane.home.rglob("*.frames"))
            assert held == []  # the control plane dropped its copy once the fork had it
        finally:
            ams.disk.wipe()
            iad.disk.wipe()
