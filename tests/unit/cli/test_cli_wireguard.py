"""`ferry wireguard create|list|remove` as a member runs them, against the real control
plane on a loopback port: the key pair is made locally, only the public key is sent,
the wg-quick config is complete and 0600, and refusals leave nothing behind."""

from __future__ import annotations

import base64
import configparser
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

from ...served_app import served_control_plane

ADMIN = "cli-wireguard-admin-token"
GATEWAY_KEY = base64.b64encode(bytes([9]) * 32).decode()


@pytest.fixture
def member(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, token of alice, the admin of acme); region ams has a gateway."""
    with served_control_plane(tmp_path, ADMIN) as url:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=url, headers=admin) as http:
            made = http.post("/v1/orgs", json={"slug": "acme", "admin_email": "alice@acme.test"})
            invitation = made.json()["admin_invitation"]["invitation"]
            token = http.post("/v1/invitations/accept", json={"invitation": invitation}).json()
            host = {"id": "ams-1", "region": "ams", "address": "10.0.0.2", "cpus": 2}
            assert http.post(
                "/v1/hosts", json={**host, "memory_mb": 1024, "machine_subnet": "10.1.0.0/24"}
            ).is_success
            edge = http.post("/v1/tokens", json={"kind": "edge", "region": "ams"}).json()
            announced = http.put(
                "/v1/edges/ams/mesh",
                json={"public_key": GATEWAY_KEY, "endpoint": "10.9.0.1:51820"},
                headers={"Authorization": f"Bearer {edge['token']}"},
            )
            assert announced.is_success, announced.text
        yield url, token["token"]


def ferry(member: tuple[str, str], *args: str) -> Result:
    url, token = member
    state = CliState(client_factory=lambda: FerryClient(url, token))
    return CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "250"})


def read_config(text: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser()
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read_string(text)
    return parsed


def public_of(private: str) -> str:
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def test_create_with_no_arguments_prints_a_working_config_and_sends_only_the_public_key(
    member: tuple[str, str],
) -> None:
    made = ferry(member, "wireguard", "create")
    assert made.exit_code == 0, made.output
    config = read_config(made.stdout)
    interface, peer = config["Interface"], config["Peer"]
    assert interface["Address"].endswith("/120") and interface["Address"].startswith("fdaa:")
    assert peer["PublicKey"] == GATEWAY_KEY and peer["Endpoint"] == "10.9.0.1:51821"
    assert peer["AllowedIPs"].endswith("::/48") and peer["PersistentKeepalive"] == "15"
    assert interface["DNS"] == peer["AllowedIPs"].removesuffix("/48") + "3"

    listed = ferry(member, "wireguard", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert public_of(interface["PrivateKey"]) in listed.stdout
    assert interface["PrivateKey"] not in listed.stdout
    assert "peer-" in ferry(member, "wireguard", "list").stdout


def test_create_into_a_file_is_0600_and_refusals_leave_no_file_and_no_peer(
    member: tuple[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "acme.conf"
    made = ferry(member, "wireguard", "create", "acme", "ams", "laptop", str(target))
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert read_config(target.read_text())["Interface"]["PrivateKey"] not in made.output
    first = target.read_text()

    again = ferry(member, "wireguard", "create", "acme", "ams", "desk", str(target))
    assert again.exit_code != 0 and "exists" in again.output
    assert target.read_text() == first
    other = tmp_path / "other.conf"
    taken = ferry(member, "wireguard", "create", "acme", "ams", "laptop", str(other))
    assert taken.exit_code != 0 and "already has a WireGuard peer named 'laptop'" in taken.output
    assert not other.exists()
    nowhere = ferry(member, "wireguard", "create", "acme", "sin", "desk", str(other))
    assert nowhere.exit_code != 0 and "no WireGuard gateway" in nowhere.output
    assert not other.exists()
    listed = ferry(member, "wireguard", "list", "acme")
    assert "laptop" in listed.stdout and "desk" not in listed.stdout

    removed = ferry(member, "wireguard", "remove", "acme", "laptop")
    assert removed.exit_code == 0 and "Removed peer laptop" in removed.output
    assert "laptop" not in ferry(member, "wireguard", "list").stdout
    gone = ferry(member, "wireguard", "remove", "laptop")
    assert gone.exit_code != 0 and "no WireGuard peer named 'laptop'" in gone.output
