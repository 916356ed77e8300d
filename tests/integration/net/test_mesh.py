"""The WireGuard mesh for real: two hosts (namespaces) joined only by an IPv4
underlay, wireguard-go on each, a machine behind each; their 6PN traffic rides
WireGuard and nothing else. Namespaces and daemons are removed, also on failure."""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.mesh_lab import LabHost, MeshLab, echo, echo_server, mesh_lab
from ferry.errors import NetworkError
from ferry.net import iproute, wireguard
from ferry.net.mesh_sync import HostMesh

MIB = 1 << 20


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[MeshLab]:
    with mesh_lab(tmp_path) as made:
        yield made
    for host in made.hosts:  # the teardown left nothing behind
        assert not iproute.netns_exists(host.netns)
        assert not wireguard.daemon_pids(host.mesh.ifname)
        assert not (wireguard.RUN_DIR / f"{host.mesh.ifname}.sock").exists()


def tx_to_peer(host: LabHost) -> int:
    return sum(p.tx_bytes for p in wireguard.current_peers(host.mesh.ifname))


def the_daemon(host: LabHost) -> int:
    (pid,) = wireguard.daemon_pids(host.mesh.ifname)
    return pid


def test_machines_on_two_hosts_talk_over_wireguard_and_only_over_it(lab: MeshLab) -> None:
    h1, h2 = lab.hosts
    daemons = (the_daemon(h1), the_daemon(h2))
    assert "add h2: 192.0.2.2:51820, 2 prefixes" in lab.sync(h1).reasons
    assert "add h1: 192.0.2.1:51820, 2 prefixes" in lab.sync(h2).reasons
    assert lab.sync(h1).reasons == ()  # as configured: a second cycle changes nothing

    with echo_server(h2) as port:
        before = tx_to_peer(h1)
        assert echo(h1, h2, port, MIB), "machine 1 cannot reach machine 2 over 6PN"
        assert tx_to_peer(h1) - before > MIB  # the bytes rode WireGuard

        # h2 leaves h1's mesh: with no other IPv6 path, the machines cannot talk.
        report = lab.sync(h1, with_peer=False)
        assert any(r.startswith("remove peer") for r in report.reasons)
        assert f"no route {h2.machine_prefix} via {h1.mesh.ifname}" in report.reasons
        assert wireguard.current_peers(h1.mesh.ifname) == []
        assert not echo(h1, h2, port, 1024, timeout=2.0)

        # and back, without restarting anything
        assert not lab.sync(h1).restarted
        assert echo(h1, h2, port, 64 * 1024)
    assert (the_daemon(h1), the_daemon(h2)) == daemons


def test_a_killed_wireguard_go_comes_back_with_its_key_and_peers(lab: MeshLab) -> None:
    h1, h2 = lab.hosts
    lab.sync(h1)
    lab.sync(h2)
    key_before = lab.announce(h1).public_key
    key_file = h1.mesh.key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = key_file.read_text().strip()
    assert private not in (h1.mesh.state_dir / "wireguard" / f"{h1.mesh.ifname}.log").read_text()

    os.kill(the_daemon(h1), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while wireguard.is_running(h1.mesh.ifname):
        assert time.monotonic() < deadline, "wireguard-go survived SIGKILL"
        time.sleep(0.02)
    with echo_server(h2) as port:
        assert not echo(h1, h2, port, 1024, timeout=2.0)

        # An agent restart: a new HostMesh for the same host, the same cycle.
        restarted = HostMesh(**{f: getattr(h1.mesh, f) for f in h1.mesh.__dataclass_fields__})
        report = restarted.sync([lab.announce(h2)], [h1.machine_prefix])
        assert report.restarted
        assert report.announce.public_key == key_before
        assert wireguard.current_peers(h1.mesh.ifname)[0].public_key == lab.announce(h2).public_key
        assert echo(h1, h2, port, 256 * 1024)


def test_an_agent_restart_finds_the_interface_and_keeps_its_peers(lab: MeshLab) -> None:
    h1, h2 = lab.hosts
    lab.sync(h1)
    lab.sync(h2)
    pid = the_daemon(h1)
    # not the starter's child nor in its session: an agent's exit leaves it running
    assert os.getsid(pid) != os.getsid(0)
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid()
    again = HostMesh(**{f: getattr(h1.mesh, f) for f in h1.mesh.__dataclass_fields__})
    report = again.sync([lab.announce(h2)], [h1.machine_prefix])
    assert (report.restarted, report.reasons) == (False, ())
    assert the_daemon(h1) == pid


def test_a_peer_claiming_anothers_key_is_refused_and_the_mesh_keeps_working(
    lab: MeshLab,
) -> None:
    h1, h2 = lab.hosts
    lab.sync(h1)
    lab.sync(h2)
    good = lab.announce(h2)
    impostor = type(good)("h9", good.public_key, "192.0.2.9:51820", ("fdaa:0:1:0:9::/80",))
    report = h1.mesh.sync([good, impostor], [h1.machine_prefix])
    assert report.reasons == ("peer h9 refused: its public key is already h2's",)
    with echo_server(h2) as port:
        assert echo(h1, h2, port, 64 * 1024)


def test_an_interface_name_in_use_in_another_namespace_is_refused(lab: MeshLab) -> None:
    h1, h2 = lab.hosts
    with pytest.raises(NetworkError, match="another network namespace"):
        wireguard.ensure_interface(
            h2.netns, h1.mesh.ifname, h2.mesh.key_file, 51821, h2.mesh.address
        )


def test_cluster_teardown_stops_every_interface_of_its_scope(lab: MeshLab) -> None:
    names = sorted(host.mesh.ifname for host in lab.hosts)
    assert wireguard.delete_interfaces(lab.scope) == names
    for host in lab.hosts:
        assert not wireguard.is_running(host.mesh.ifname)
        assert not iproute.netns_has_link(host.netns, host.mesh.ifname)
