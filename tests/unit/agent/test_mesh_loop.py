"""The agent's mesh loop with a fake control plane and a fake interface: it announces
once, applies every newer snapshot without itself, survives the control plane going
away, and rebuilds the peers it had from its copy after a restart."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ferry.agent.mesh_loop import MeshLoop
from ferry.errors import UnavailableError
from ferry.model.mesh import MeshNode, MeshNodeKind, MeshSnapshot
from ferry.net.mesh import MeshPeer
from ferry.net.mesh_sync import MeshReport

KEY = "A" * 43 + "="


def node(node_id: str, n: int) -> MeshNode:
    return MeshNode(
        id=node_id,
        kind=MeshNodeKind.HOST,
        region="ams",
        public_key=chr(ord("A") + n) * 43 + "=",
        endpoint=f"10.0.0.{n}:51820",
        address=f"fdaa::{n}:0:0:1",
        allowed_ips=[f"fdaa::{n}:0:0:1/128"],
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class FakeInterface:
    node_id = "ams-1"
    endpoint = "10.0.0.1:51820"

    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    def announce(self, local_prefixes: Sequence[str]) -> MeshPeer:
        return MeshPeer(self.node_id, KEY, self.endpoint, ("fdaa::1:0:0:1/128",))

    def sync(self, desired: Sequence[MeshPeer], local_prefixes: Sequence[str]) -> MeshReport:
        self.applied.append([p.node_id for p in desired])
        return MeshReport(self.announce(local_prefixes), False, (), ())


class FakePlane:
    def __init__(self, *snapshots: MeshSnapshot) -> None:
        self.snapshots = list(snapshots)
        self.announced: list[tuple[str, str, str]] = []
        self.down = False

    def announce_host_mesh(self, host_id: str, public_key: str, endpoint: str) -> MeshNode:
        if self.down:
            raise UnavailableError("control plane down")
        self.announced.append((host_id, public_key, endpoint))
        return node(host_id, 1)

    def watch_mesh(self, since: int = 0, timeout: float = 30) -> MeshSnapshot:
        if self.down:
            raise UnavailableError("control plane down")
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


def loop(plane: FakePlane, interface: FakeInterface, tmp_path: Path) -> MeshLoop:
    def announce(public_key: str, endpoint: str) -> MeshNode:
        return plane.announce_host_mesh("ams-1", public_key, endpoint)

    return MeshLoop(plane, announce, interface, list, threading.Event(), tmp_path / "mesh.json")


def test_announces_once_and_applies_each_new_snapshot_without_itself(tmp_path: Path) -> None:
    one = MeshSnapshot(version=1, nodes=[node("ams-1", 1), node("ams-2", 2)])
    two = MeshSnapshot(version=2, nodes=[node("ams-1", 1), node("ams-2", 2), node("sin-1", 3)])
    plane, interface = FakePlane(one, two, two), FakeInterface()
    mesh = loop(plane, interface, tmp_path)
    for _ in range(3):
        mesh.sync_once()
    assert plane.announced == [("ams-1", KEY, "10.0.0.1:51820")]
    assert interface.applied == [["ams-2"], ["ams-2", "sin-1"]]  # version 2 applied once


def test_a_restarted_host_rebuilds_its_peers_from_its_copy_while_the_plane_is_down(
    tmp_path: Path,
) -> None:
    snapshot = MeshSnapshot(version=4, nodes=[node("ams-1", 1), node("sin-1", 3)])
    loop(FakePlane(snapshot), FakeInterface(), tmp_path).sync_once()
    plane, interface = FakePlane(snapshot), FakeInterface()
    plane.down = True
    restarted = loop(plane, interface, tmp_path)
    restarted.stopping.set()  # run() applies its copy first, then sees it must stop
    restarted.run()
    assert interface.applied == [["sin-1"]]
    assert plane.announced == []
