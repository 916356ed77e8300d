"""``GET /openapi.json`` describes every operation completely: the body it takes, the body
of its success answer, and each error status it can answer with the ``{"error", "hint"}``
body every failure uses (ferry/server/openapi.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import ferry.server.routes
from ferry.server import create_app
from ferry.store import SqliteStore

ERROR_REF = "#/components/schemas/ErrorBody"
#: Every route behind a token can answer these (bad field, token, access, missing, rate, store).
AUTHORIZED = {"400", "401", "403", "404", "429", "503"}
_ROUTES = Path(ferry.server.routes.__file__).parent
_ROUTE = re.compile(r"@router\.(get|post|put|patch|delete)\(")
PUBLIC = {"/healthz", "/v1/invitations/accept", "/v1/hosts/join", "/openapi.json"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    store = SqliteStore(tmp_path / "state.db")
    try:
        yield create_app(store, admin_token="t", run_liveness=False, run_autoscaler=False)
    finally:
        store.close()


@pytest.fixture
def doc(app: FastAPI) -> dict[str, Any]:
    answer = TestClient(app).get("/openapi.json")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def test_every_route_of_the_app_is_in_the_document(doc: dict[str, Any]) -> None:
    """As many operations as route decorators in ferry/server/routes (none hidden)."""
    decorators = sum(len(_ROUTE.findall(source.read_text())) for source in _ROUTES.glob("*.py"))
    assert len(_operations(doc)) == decorators
    assert decorators > 60


def test_every_operation_declares_its_success_body(doc: dict[str, Any]) -> None:
    missing = []
    for method, path, op in _operations(doc):
        success = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert len(success) == 1, f"{method} {path}: {sorted(success)}"
        ((status, response),) = success.items()
        if status == "204":
            assert "content" not in response, f"{method} {path}: a 204 has no body"
            continue
        content = response.get("content", {})
        schema = content.get("application/json", {}).get("schema") or content.get(
            "application/octet-stream", {}
        ).get("schema")  # a volume copy between hosts is bytes
        if not schema:  # {} (anything) is not a declaration
            missing.append(f"{method} {path}")
    assert missing == []


def test_every_operation_declares_its_errors_with_the_error_body(doc: dict[str, Any]) -> None:
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "hint"}
    for method, path, op in _operations(doc):
        statuses = {s for s in op["responses"] if not s.startswith("2")}
        if path == "/healthz":
            assert statuses == set(), "healthz cannot fail"
            continue
        expected = {"400", "401", "404", "409", "503"} if path in PUBLIC else AUTHORIZED
        assert expected <= statuses, f"{method} {path} lacks {sorted(expected - statuses)}"
        for status in statuses:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, f"{method} {path} {status}"


def test_fastapi_422_is_not_declared_since_a_bad_request_is_a_400(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    capacity = [(m, p) for m, p, op in _operations(doc) if "422" in op["responses"]]
    # 422 is Ferry's "no capacity", only where a machine is placed (or asked whether it fits).
    placing = ("/v1/apps/{app_name}/machines", "/v1/platform/room")
    assert capacity and all(p.startswith(placing) for _m, p in capacity)


def test_operations_that_can_conflict_declare_it(doc: dict[str, Any]) -> None:
    responses = {(m, p): op["responses"] for m, p, op in _operations(doc)}
    machine = "/v1/apps/{app_name}/machines/{machine_id}"
    assert {"408", "409"} <= set(responses[("GET", f"{machine}/wait")])
    assert "412" in responses[("POST", f"{machine}/stop")]  # a stale lease nonce
    assert "409" in responses[("POST", "/v1/apps")]
    assert "409" in responses[("GET", f"{machine}/ps")]


def test_every_operation_with_a_body_declares_it(doc: dict[str, Any]) -> None:
    bodies = {(m, p): op["requestBody"] for m, p, op in _operations(doc) if "requestBody" in op}
    assert len(bodies) > 20
    for (method, path), body in bodies.items():
        assert body["content"]["application/json"]["schema"], f"{method} {path}"
    create = bodies[("POST", "/v1/apps/{app_name}/machines")]
    schema = create["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/CreateMachineRequest"}
