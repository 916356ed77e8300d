"""What the audit trail records and where (pure), and the recorder around a crashing route."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from ferry.model.access import Role
from ferry.server.audit import AuditMiddleware
from ferry.server.audit_policy import (
    Target,
    actor_of,
    is_infrastructure,
    outcome_text,
    record_org,
    should_record,
)
from ferry.server.authz import OPERATOR, Principal
from ferry.store import SqliteStore

from .conftest import FakeClock

BOB = Principal(kind="org", name="bob-ci", token_id="t1", org_slug="globex")
ALICE = Principal(kind="user", name="alice", email="alice@acme.test", roles={"acme": Role.ADMIN})
HOST = Principal(kind="host", name="ams-1", host_id="ams-1")
ROCKET = Target(app_name="rocket", app_org="acme")


def test_every_change_is_recorded_whatever_its_outcome() -> None:
    for status in (200, 201, 202, 400, 404, 409, 500):
        assert should_record("POST", status, ALICE, ROCKET)
        assert should_record("DELETE", status, None, Target())


def test_a_read_is_recorded_only_when_it_probed_something_hidden() -> None:
    assert not should_record("GET", 200, BOB, ROCKET)
    assert should_record("GET", 404, BOB, ROCKET)  # acme's app, hidden from globex
    assert not should_record("GET", 404, ALICE, ROCKET)  # her own app: a missing machine
    assert not should_record("GET", 404, BOB, Target(app_name="ghost"))  # exists nowhere
    assert should_record("GET", 404, BOB, Target(org_slug="acme"))
    assert not should_record("GET", 404, ALICE, Target(org_slug="acme"))
    assert should_record("HEAD", 401, None, ROCKET)
    assert not should_record("GET", 401, None, Target())


def test_agents_routine_work_is_left_out_but_their_refusals_are_not() -> None:
    assert is_infrastructure("/v1/hosts/ams-1/heartbeat") and is_infrastructure("/v1/routes")
    assert is_infrastructure("/v1/edges/{region}/traffic") and is_infrastructure("/v1/hosts")
    assert not is_infrastructure("/v1/apps/hosts") and not is_infrastructure("/v1/hostsx")
    assert not should_record("POST", 200, HOST, ROCKET)
    assert should_record("POST", 404, HOST, ROCKET)


def test_the_record_goes_to_the_organization_it_touched() -> None:
    assert record_org(BOB, ROCKET) == "acme"
    assert record_org(BOB, Target(org_slug="acme")) == "acme"
    assert record_org(BOB, Target(app_name="ghost")) == "globex"
    assert record_org(ALICE, Target(noted_org="acme")) == "acme"
    assert record_org(ALICE, Target()) is None and record_org(None, Target()) is None


def test_actor_and_outcome_say_who_and_what_happened_without_secrets() -> None:
    assert actor_of(BOB) == "org token 'bob-ci' (globex)"
    assert actor_of(OPERATOR) == "the operator"
    assert actor_of(None) == "unauthenticated"
    assert outcome_text(200, b"") == "ok"
    assert outcome_text(404, json.dumps({"error": "app 'x' not found"}).encode()) == (
        "app 'x' not found"
    )
    assert outcome_text(502, b"<html>") == "Bad Gateway"
    assert len(outcome_text(400, json.dumps({"error": "x" * 5000}).encode())) == 500


def test_a_crash_is_recorded_as_a_500_and_the_answer_still_goes_out(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    app = FastAPI()

    @app.post("/v1/apps/{app_name}/explode")
    def explode(app_name: str) -> None:
        raise RuntimeError("boom")

    app.add_middleware(AuditMiddleware, store=store, clock=FakeClock())
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.post("/v1/apps/rocket/explode").status_code == 500
        (record,) = store.list_audit(None)
        assert (record.status, record.outcome) == (500, "Internal Server Error")
        assert record.route == "/v1/apps/{app_name}/explode" and record.actor == "unauthenticated"
    finally:
        store.close()
