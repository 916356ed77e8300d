"""The client against the real control plane, served by uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.errors import ApiError
from ferry.model import MachineConfig

from ...served_app import served_control_plane

TOKEN = "client-test-token"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with served_control_plane(
        tmp_path, TOKEN, registry="127.0.0.1:5999", run_autoscaler=True
    ) as url:
        yield url


def test_agent_and_user_flow_through_the_real_api(base_url: str) -> None:
    with FerryClient(base_url, TOKEN) as client:
        host = client.register_host(
            host_id="ams-1",
            region="ams",
            address="10.0.0.2",
            cpus=2,
            memory_mb=2048,
            machine_subnet="10.1.0.0/24",
        )
        assert host.region == "ams"
        client.heartbeat("ams-1")
        assert [r.code for r in client.regions()] == ["ams"]
        assert client.platform_info()["registry"] == "127.0.0.1:5999"
        client.create_app("web")
        machine = client.create_machine("web", MachineConfig(image="img"), region="ams")
        version, assigned = client.watch_host_machines("ams-1", since=0, timeout=1)
        assert version > 0 and [m.id for m in assigned] == [machine.id]
        reported = client.report_status(
            "ams-1", machine.id, "started", machine.instance_id, "start", "started"
        )
        assert reported.state.value == "started"
        assert client.wait_machine("web", machine.id, timeout=2) == "started"
        client.upload_logs("ams-1", machine.id, ["hello"])
        assert client.machine_logs("web", machine.id) == ["hello"]
        with pytest.raises(ApiError) as duplicate:
            client.create_app("web")
        assert duplicate.value.status == 409


def test_wrong_token_is_a_401_api_error(base_url: str) -> None:
    with pytest.raises(ApiError) as error, FerryClient(base_url, "wrong") as client:
        client.list_apps()
    assert error.value.status == 401


def test_a_host_joins_the_mesh_and_sees_itself_in_the_snapshot(base_url: str) -> None:
    public_key = "x" * 43 + "="
    with FerryClient(base_url, TOKEN) as client:
        client.register_host(
            host_id="ams-1",
            region="ams",
            address="10.0.0.2",
            cpus=2,
            memory_mb=2048,
            machine_subnet="10.1.0.0/24",
        )
        node = client.announce_host_mesh("ams-1", public_key, "10.0.0.2:51820")
        assert node.id == "ams-1" and node.allowed_ips == [f"{node.address}/128"]
        snapshot = client.watch_mesh(since=0, timeout=1)
        assert [n.public_key for n in snapshot.nodes] == [public_key]
        with pytest.raises(ApiError) as taken:
            client.announce_edge_mesh("ams", public_key, "10.0.0.1:51821")
        assert taken.value.status == 409
        assert client.watch_mesh(since=snapshot.version, timeout=0).version == snapshot.version
