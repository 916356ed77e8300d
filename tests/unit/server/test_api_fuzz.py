"""The API under a fuzzer: schemathesis sends generated requests to every operation of the
real control plane (its FastAPI app served by uvicorn on a loopback port, over a real
SQLite store in tmp_path) and asserts, for every answer: no 5xx, a status the document
declares for that operation, the declared content type and headers, and a body that
validates against the declared schema (docs/api-fuzzing.md).

Each generated case is sent four times: as generated (mostly unknown names: the 404
and 400 paths) with the operator token, then with its path parameters pinned to a
world set up first (an organization, an app with a machine on a registered host) so
the deeper paths are reached, with the operator's, an app deploy token and an
organization read-only token. Reproducible: derandomized, a fixed schemathesis seed.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ferry.model.lease import NONCE_HEADER
from ferry.server import create_app
from ferry.server.auth import RateLimits
from ferry.server.ratelimit import RateLimit
from ferry.store import SqliteStore

from ...served_app import served_app
from .conftest import host_body

TOKEN = "fuzz-admin-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Long-polls wait up to their ``timeout`` (schema max 60 or 300 s) when nothing changes:
#: the fuzzer's value is kept when it is below this, else lowered to it (still in range).
LONG_POLL_TIMEOUT = 0.05
#: Reproducible by default; ``FERRY_FUZZ_SEED`` / ``FERRY_FUZZ_EXAMPLES`` explore further.
SEED = int(os.environ.get("FERRY_FUZZ_SEED", "12"))
EXAMPLES = int(os.environ.get("FERRY_FUZZ_EXAMPLES", "12"))
APP, ORG, REGION, HOST = "fuzz-web", "fuzz-org", "ams", "ams-1"
PROCESS_REPORT_EVERY = 10.0
SECRET, KEY = "FUZZ_SECRET", "fuzz-key"


class World:
    """The state pinned path parameters point at; ``ensure`` recreates what a fuzzed
    request deleted (the app, its machine), so later cases still reach deep paths."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.operator = {"Authorization": f"Bearer {TOKEN}"}
        self.machine_id = ""
        self.reported_at = 0.0
        #: (who, status class) -> answers, and the operations that answered 2xx: printed at
        #: the end (``pytest -s``) to show how deep the fuzzer got.
        self.seen: Counter[tuple[str, str]] = Counter()
        self.succeeded: set[str] = set()
        self.deploy = self.readonly = {"Authorization": "Bearer none"}  # ensure mints them
        self._call("POST", "/v1/orgs", {"slug": ORG})
        body = host_body(HOST, REGION, cpus=64, memory_mb=65536)
        self._call("POST", "/v1/hosts", body)
        self.ensure()
        # A release, a staged secret and a metadata key for the pinned version, name and key.
        self._call("POST", f"/v1/apps/{APP}/releases", {"image": "registry.local/web:1"})
        self._call("POST", f"/v1/apps/{APP}/secrets", {"values": {SECRET: "s3cret"}, "stage": True})
        self._call(
            "POST", f"/v1/apps/{APP}/machines/{self.machine_id}/metadata/{KEY}", {"value": "1"}
        )

    def _call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        url, sent = self.base + path, {**self.operator, **(headers or {})}
        return self.session.request(method, url, json=body, headers=sent, timeout=10)

    def _token(self, body: dict[str, str]) -> dict[str, str]:
        answer = self._call("POST", "/v1/tokens", body)
        assert answer.status_code == 201, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def lease_nonce(self) -> str | None:
        """The nonce of the machine's live lease, if a fuzzed request took one."""
        lease = self._call("GET", f"/v1/apps/{APP}/machines/{self.machine_id}/lease")
        return str(lease.json()["data"]["nonce"]) if lease.status_code == 200 else None

    def _agent_report(self, machine: dict[str, Any], state: str, event: str) -> None:
        """What the host's agent would report (no agent runs here)."""
        body = {
            "state": state,
            "instance_id": machine["instance_id"],
            "event": {"type": event, "status": state},
        }
        path = f"/v1/hosts/{HOST}/machines/{machine['id']}/status"
        reported = self._call("POST", path, body)
        assert reported.status_code in (200, 404), reported.text  # 404: it is gone already

    def ensure(self) -> None:
        """Undo what a fuzzed change did to the world: a deleted or moved app, a destroyed
        or leased machine, tokens that ended with the app. Acts the agent's part: a machine
        meant to be destroyed is reported destroyed (which ends a deleted app's deletion)."""
        listed = self._call("GET", f"/v1/apps/{APP}/machines")
        machines = listed.json() if listed.status_code == 200 else []
        for machine in machines:
            if machine["desired_state"] == "destroyed" and machine["state"] != "destroyed":
                self._agent_report(machine, "destroyed", "destroy")
        app = self._call("GET", f"/v1/apps/{APP}")
        if app.status_code == 404:
            created = self._call("POST", "/v1/apps", {"app_name": APP, "org_slug": ORG})
            assert created.status_code == 201, created.text
        elif app.json()["organization"]["slug"] != ORG:
            moved = self._call("POST", f"/v1/apps/{APP}/move", {"org_slug": ORG})
            assert moved.status_code == 200, moved.text
        if self._call("GET", f"/v1/apps/{APP}", headers=self.deploy).status_code != 200:
            self.deploy = self._token({"kind": "deploy", "app_name": APP, "name": "fuzz-ci"})
        if self._call("GET", f"/v1/apps/{APP}", headers=self.readonly).status_code != 200:
            self.readonly = self._token({"kind": "readonly", "org_slug": ORG, "name": "fuzz-ro"})
        ours = [m for m in machines if m["id"] == self.machine_id]
        if ours and ours[0]["desired_state"] != "destroyed":
            # A lease a fuzzed request took would refuse every later change (409).
            nonce = self.lease_nonce()
            if nonce is not None:
                path = f"/v1/apps/{APP}/machines/{self.machine_id}/lease"
                self._call("DELETE", path, headers={NONCE_HEADER: nonce})
            self.report_processes(ours[0]["instance_id"])
            return
        config = {"image": "registry.local/web:1", "guest": {"cpus": 1, "memory_mb": 256}}
        made = self._call("POST", f"/v1/apps/{APP}/machines", {"config": config})
        assert made.status_code == 200, made.text
        machine = made.json()
        self.machine_id = machine["id"]
        # As its agent would: the machine runs (cordon, suspend, signal, ps need it).
        self._agent_report(machine, "started", "start")
        self.report_processes(machine["instance_id"])

    def report_processes(self, instance_id: str) -> None:
        """As the agent does every few seconds (``ps`` is 503 without a fresh report: no
        agent runs here); again after each change, which may have been a fuzzed report."""
        process = {"pid": 1, "stime": 1, "rtime": 1, "command": "web", "directory": "/"}
        process |= {"cpu": 0, "rss": 1024}
        entry = {"instance_id": instance_id, "processes": [process]}
        body = {"machines": {self.machine_id: entry}}
        assert self._call("POST", f"/v1/hosts/{HOST}/processes", body).status_code == 200
        self.reported_at = time.monotonic()

    def refresh(self) -> None:
        """The process report again when it is about to age out (30 s)."""
        if time.monotonic() - self.reported_at > PROCESS_REPORT_EVERY:
            self.ensure()

    def record(self, who: str, case: Any, status: int) -> None:
        self.seen[(who, f"{status // 100}xx")] += 1
        if status < 300:
            self.succeeded.add(f"{case.method} {case.path}")

    def summary(self) -> str:
        counts = ", ".join(f"{who} {kind}: {n}" for (who, kind), n in sorted(self.seen.items()))
        never = sorted(_ALL_OPERATIONS - self.succeeded)
        return (
            f"fuzz answers: {counts}; operations answered 2xx: {len(self.succeeded)}; "
            f"never 2xx: {never}"
        )

    def pinned(self) -> dict[str, str]:
        return {
            "app_name": APP,
            "machine_id": self.machine_id,
            "host_id": HOST,
            "slug": ORG,
            "region": REGION,
            "version": "1",
            "name": SECRET,
            "key": KEY,
        }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    """The control plane on a loopback port for the module, and its world."""
    store = SqliteStore(Path(tmp_path_factory.mktemp("fuzz")) / "state.db")
    unlimited = RateLimit(0.0, 0)  # a rate of 0 turns the limit off: the fuzzer is fast
    app = create_app(
        store,
        admin_token=TOKEN,
        run_liveness=False,
        run_autoscaler=False,
        rate_limits=RateLimits(tokens=unlimited, infra=unlimited),
    )
    # No agent runs the machines: a secrets roll gives up on each at once, not after 60 s.
    app.state.plane.secrets_rollouts.machine_timeout = LONG_POLL_TIMEOUT
    # Nor waits ``ps`` for a first process report beyond that.
    app.state.plane.processes.first_wait = LONG_POLL_TIMEOUT
    # Nor an exec for an agent to take it: the World answers them (``answer_execs``).
    app.state.plane.execs.pickup_seconds = 2.0
    try:
        with served_app(app) as base:
            world = World(base)
            stop = threading.Event()
            agent = threading.Thread(target=answer_execs, args=(base, stop), daemon=True)
            agent.start()
            yield base, world
            stop.set()
            agent.join(5)
            print(world.summary())
    finally:
        store.close()


def answer_execs(base: str, stop: threading.Event) -> None:
    """The host agent's part for exec: take each order and answer it as an empty success."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with requests.Session() as session:
        while not stop.is_set():
            url = f"{base}/v1/hosts/{HOST}/exec-requests?timeout=1"
            orders = session.get(url, headers=headers, timeout=10).json()["requests"]
            for order in orders:
                answer = f"{base}/v1/hosts/{HOST}/exec-requests/{order['id']}"
                session.post(answer, json={"exit_code": 0}, headers=headers, timeout=10)


def _document() -> dict[str, Any]:
    """The OpenAPI document of the app (it does not depend on the store's content)."""
    with tempfile.TemporaryDirectory() as scratch:
        store = SqliteStore(Path(scratch) / "doc.db")
        try:
            return create_app(store, admin_token=TOKEN).openapi()
        finally:
            store.close()


DOCUMENT = _document()
_ALL_OPERATIONS = {f"{m.upper()} {p}" for p, ops in DOCUMENT["paths"].items() for m in ops}
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {"seed": SEED, "phases": {"coverage": {"enabled": False}}, "generation": {"mode": "all"}}
    ),
)


def test_the_served_document_is_the_fuzzed_one(served: tuple[str, World]) -> None:
    base, _world = served
    assert requests.get(f"{base}/openapi.json", timeout=10).json() == DOCUMENT


def _bound_long_polls(case: Any) -> None:
    """A long-poll's ``timeout`` (its default is 30 or 60 s) lowered to ``LONG_POLL_TIMEOUT``."""
    names = {p.name for p in case.operation.query}
    if "timeout" not in names or case.path.endswith("/restart"):
        return  # restart's timeout is the stop's grace period, a string: no wait here
    if not isinstance(case.query, dict):
        case.query = {}
    value = case.query.get("timeout")
    if value is None:
        case.query["timeout"] = LONG_POLL_TIMEOUT
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        case.query["timeout"] = min(value, LONG_POLL_TIMEOUT)


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_keeps_to_its_document_under_a_fuzzer(case: Any, served: tuple[str, World]) -> None:
    base, world = served
    world.refresh()
    _bound_long_polls(case)
    answer = case.call_and_validate(
        base_url=base, headers=world.operator, checks=CHECKS, timeout=10
    )
    world.record("generated/operator", case, answer.status_code)
    if case.method != "GET":
        world.ensure()
    pinned = world.pinned()
    for name in case.path_parameters or {}:
        if name in pinned:
            case.path_parameters[name] = pinned[name]
    for who, token in (
        ("pinned/operator", world.operator),
        ("pinned/deploy", world.deploy),
        ("pinned/readonly", world.readonly),
    ):
        if who != "pinned/operator" and case.headers and NONCE_HEADER in case.headers:
            # The operator's pass sends the fuzzed nonce (a stale one: 409/412); the others
            # the live lease's, or none, so they reach the change itself.
            nonce = world.lease_nonce()
            if nonce is None:
                del case.headers[NONCE_HEADER]
            else:
                case.headers[NONCE_HEADER] = nonce
        answer = case.call_and_validate(base_url=base, headers=token, checks=CHECKS, timeout=10)
        world.record(who, case, answer.status_code)
        if case.method != "GET":  # a read changes nothing to undo
            world.ensure()
