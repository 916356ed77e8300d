"""A real control plane over a real SQLite store in tmp_path, with a clock the test steers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ferry.server import create_app
from ferry.server.context import ControlPlane
from ferry.store import SqliteStore

from ...server_process import plane as plane  # the fixture of the kill -9 tests

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def host_body(
    host_id: str = "ams-1",
    region: str = "ams",
    *,
    cpus: int = 4,
    memory_mb: int = 4096,
    subnet: str = "10.1.0.0/24",
) -> dict[str, Any]:
    """The body of ``POST /v1/hosts`` registering a host at 10.0.0.2."""
    return {
        "id": host_id,
        "region": region,
        "address": "10.0.0.2",
        "cpus": cpus,
        "memory_mb": memory_mb,
        "machine_subnet": subnet,
    }


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.current = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class Api:
    """The client plus the plane behind it, and helpers for common steps."""

    client: TestClient
    plane: ControlPlane
    clock: FakeClock

    def register_host(
        self, host_id: str = "ams-1", region: str = "ams", **sizes: Any
    ) -> dict[str, Any]:
        """Register the host ``host_body`` describes (``sizes``: its cpus, memory_mb, subnet)."""
        body = host_body(host_id, region, **sizes)
        response = self.client.post("/v1/hosts", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def create_app(self, name: str = "web") -> None:
        response = self.client.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
        assert response.status_code == 201, response.text

    def create_machine(self, app: str = "web", **body: Any) -> dict[str, Any]:
        body.setdefault("config", {"image": "registry.local/web:1"})
        response = self.client.post(f"/v1/apps/{app}/machines", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def report(
        self, machine: dict[str, Any], state: str, event_type: str = "start", **extra: Any
    ) -> dict[str, Any]:
        body = {
            "state": state,
            "instance_id": machine["instance_id"],
            "event": {"type": event_type, "status": state},
            **extra,
        }
        url = f"/v1/hosts/{machine['host_id']}/machines/{machine['id']}/status"
        response = self.client.post(url, json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def open_api(db: Path, clock: FakeClock, **options: Any) -> Iterator[Api]:
    store = SqliteStore(db)
    options.setdefault("run_liveness", False)
    options.setdefault("run_autoscaler", False)
    app = create_app(store, admin_token=TOKEN, clock=clock, **options)
    try:
        with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
            yield Api(client, app.state.plane, clock)
    finally:
        store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    yield from open_api(tmp_path / "state.db", clock)


# -- organizations and tokens (as tests/unit/server/test_orgs_and_tokens.py uses them) --


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def org_with_admin(api: Api, slug: str, email: str) -> str:
    """Create ``slug`` as the operator with ``email`` its admin; that admin's user token."""
    created = api.client.post("/v1/orgs", json={"slug": slug, "admin_email": email})
    assert created.status_code == 201, created.text
    invitation = created.json()["admin_invitation"]["invitation"]
    accepted = api.client.post("/v1/invitations/accept", json={"invitation": invitation})
    assert accepted.status_code == 201, accepted.text
    token: str = accepted.json()["token"]
    return token


def mint_token(api: Api, by: str, **body: Any) -> str:
    created = api.client.post("/v1/tokens", json=body, headers=bearer(by))
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


@pytest.fixture
def two_orgs(api: Api) -> dict[str, str]:
    """acme (alice, app ``rocket``) and globex (bob, app ``widget``)."""
    alice = org_with_admin(api, "acme", "alice@acme.test")
    bob = org_with_admin(api, "globex", "bob@globex.test")
    for token, app in ((alice, "rocket"), (bob, "widget")):
        made = api.client.post("/v1/apps", json={"app_name": app}, headers=bearer(token))
        assert made.status_code == 201, made.text
        assert made.json()["organization"]["slug"] == ("acme" if token == alice else "globex")
    return {"alice": alice, "bob": bob}
