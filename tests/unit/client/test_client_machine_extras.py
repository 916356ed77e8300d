"""Leases, metadata, cordon and versions through the client and the CLI, on the real API."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient
from ferry.errors import ApiError
from ferry.model import Machine, MachineConfig

from .test_client_server import TOKEN, base_url

__all__ = ["base_url"]


def _started(client: FerryClient) -> Machine:
    client.register_host(
        host_id="ams-1",
        region="ams",
        address="10.0.0.2",
        cpus=2,
        memory_mb=2048,
        machine_subnet="10.1.0.0/24",
    )
    client.create_app("web")
    machine = client.create_machine("web", MachineConfig(image="img"))
    client.report_status("ams-1", machine.id, "started", machine.instance_id, "start", "started")
    return machine


def test_a_lease_guards_the_machine_until_released(base_url: str) -> None:
    with FerryClient(base_url, TOKEN) as client:
        machine = _started(client)
        lease = client.acquire_lease("web", machine.id, ttl=20, description="deploy")
        assert client.get_lease("web", machine.id) == lease
        with pytest.raises(ApiError) as held:
            client.stop_machine("web", machine.id)
        assert held.value.status == 409 and "held by admin (deploy)" in held.value.message
        refreshed = client.acquire_lease("web", machine.id, ttl=20, nonce=lease.nonce)
        assert refreshed.nonce == lease.nonce and refreshed.version != lease.version
        client.update_machine("web", machine.id, MachineConfig(image="img2"), nonce=lease.nonce)
        client.release_lease("web", machine.id, lease.nonce)
        with pytest.raises(ApiError) as gone:
            client.get_lease("web", machine.id)
        assert gone.value.status == 404
        versions = client.machine_versions("web", machine.id)
        assert [v.user_config.image for v in versions] == ["img2", "img"]


def test_metadata_and_cordon_through_the_client(base_url: str) -> None:
    with FerryClient(base_url, TOKEN) as client:
        machine = _started(client)
        client.set_metadata("web", machine.id, "role", "primary")
        assert client.get_metadata("web", machine.id) == {"role": "primary"}
        client.delete_metadata("web", machine.id, "role")
        assert client.get_metadata("web", machine.id) == {}
        client.cordon_machine("web", machine.id)
        assert client.get_machine("web", machine.id).cordoned
        client.uncordon_machine("web", machine.id)
        assert not client.get_machine("web", machine.id).cordoned


def _cli(base_url: str, *args: str) -> tuple[int, str]:
    state = CliState(client_factory=lambda: FerryClient(base_url, TOKEN))
    result = CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_cli_verbs(base_url: str) -> None:
    with FerryClient(base_url, TOKEN) as client:
        machine = _started(client)
    mid = machine.id
    code, out = _cli(base_url, "machine", "cordon", mid, "-a", "web")
    assert code == 0 and "is cordoned" in out
    code, out = _cli(base_url, "machine", "uncordon", mid, "-a", "web")
    assert code == 0 and "is uncordoned" in out

    code, out = _cli(base_url, "machine", "metadata", mid, "-a", "web", "--set", "role=db")
    assert code == 0 and "role=db" in out
    code, out = _cli(base_url, "machine", "metadata", mid, "-a", "web", "--set", "novalue")
    assert code != 0 and "is not KEY=VALUE" in out
    code, out = _cli(base_url, "machine", "metadata", mid, "-a", "web", "--delete", "role")
    assert code == 0 and "role" not in out

    code, out = _cli(base_url, "machine", "lease", mid, "-a", "web", "--acquire", "--ttl", "30")
    assert code == 0 and "held by admin" in out
    nonce = out.split("nonce ", 1)[1].split(",", 1)[0]
    code, out = _cli(base_url, "machine", "lease", mid, "-a", "web")
    assert code == 0 and nonce in out
    code, out = _cli(base_url, "machine", "stop", mid, "-a", "web")
    assert code != 0 and "held by admin" in out
    code, out = _cli(base_url, "machine", "lease", mid, "-a", "web", "--release", nonce)
    assert code == 0 and "Released" in out
    code, out = _cli(base_url, "machine", "lease", mid, "-a", "web")
    assert code != 0 and "has no lease" in out
