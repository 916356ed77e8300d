"""A member restarted after its machine died hands over the leader key it still holds.

The entrypoint talks to etcd's v3 JSON gateway; here a small in-process HTTP server
plays etcd's two calls (``kv/range``, ``kv/txn`` with a value compare) on one key.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ferry.postgres import entrypoint
from ferry.postgres.patroni_config import read_settings

SECRETS = {"SU_PASSWORD": "a", "REPL_PASSWORD": "b", "OPERATOR_PASSWORD": "c"}
KEY = "/ferry/pgdb/leader"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeEtcd(ThreadingHTTPServer):
    keys: dict[str, str]
    calls: list[str]
    successor: str | None  # the replica that takes the key once it is deleted


class Handler(BaseHTTPRequestHandler):
    server: FakeEtcd

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append(self.path)
        answer: dict[str, Any] = {}
        if self.path == "/v3/kv/range":
            key = base64.b64decode(body["key"]).decode()
            if key in self.server.keys:
                answer = {"kvs": [{"key": body["key"], "value": b64(self.server.keys[key])}]}
        elif self.path == "/v3/kv/txn":
            (compare,) = body["compare"]
            key = base64.b64decode(compare["key"]).decode()
            holds = self.server.keys.get(key) == base64.b64decode(compare["value"]).decode()
            if holds and compare["target"] == "VALUE" and compare["result"] == "EQUAL":
                (op,) = body["success"]
                released = base64.b64decode(op["request_delete_range"]["key"]).decode()
                del self.server.keys[released]
                if self.server.successor:
                    self.server.keys[released] = self.server.successor
            answer = {"succeeded": holds}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass  # quiet tests


@pytest.fixture
def etcd() -> Iterator[FakeEtcd]:
    server = FakeEtcd(("127.0.0.1", 0), Handler)
    server.keys, server.calls, server.successor = {}, [], None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def settings_for(etcd: FakeEtcd, name: str) -> Any:
    endpoint = f"http://127.0.0.1:{etcd.server_address[1]}"
    env = {
        **SECRETS,
        "FLY_PRIVATE_IP": "fdaa:0:1::2",
        "PG_SCOPE": "pgdb",
        "PG_NAME": name,
        "ETCD_ENDPOINTS": endpoint,
    }
    return read_settings(env)


def test_a_key_naming_this_member_is_deleted_and_patroni_waits_for_the_new_leader(
    etcd: FakeEtcd,
) -> None:
    etcd.keys[KEY] = "m1"
    etcd.successor = "m2"

    assert entrypoint.release_leader_key_if_mine(settings_for(etcd, "m1"))

    assert etcd.keys[KEY] == "m2"
    # leader, config, the conditional delete, then the leader again: m2 has it.
    assert etcd.calls == ["/v3/kv/range", "/v3/kv/range", "/v3/kv/txn", "/v3/kv/range"]


def test_with_no_replica_taking_over_patroni_starts_after_the_ttl(
    etcd: FakeEtcd, monkeypatch: pytest.MonkeyPatch
) -> None:
    etcd.keys[KEY] = "m1"
    monkeypatch.setattr(entrypoint, "HANDOVER_EXTRA_SECONDS", 0.3)
    settings = dataclasses.replace(settings_for(etcd, "m1"), ttl=0)

    began = time.monotonic()
    assert entrypoint.release_leader_key_if_mine(settings)

    assert KEY not in etcd.keys
    assert 0.3 <= time.monotonic() - began < 5


def test_a_cluster_configured_to_restart_its_primary_in_place_keeps_the_key(
    etcd: FakeEtcd,
) -> None:
    etcd.keys[KEY] = "m1"
    etcd.keys["/ferry/pgdb/config"] = json.dumps({"ttl": 30, "primary_start_timeout": 300})

    assert not entrypoint.release_leader_key_if_mine(settings_for(etcd, "m1"))

    assert etcd.keys[KEY] == "m1"  # Patroni will restart Postgres here as the primary


@pytest.mark.parametrize(
    ("config", "fails_over"),
    [
        (None, True),  # no configuration yet: Ferry's default
        ('{"ttl": 12, "primary_start_timeout": 0}', True),
        ('{"ttl": 12, "master_start_timeout": 0}', True),  # Patroni's older name
        ('{"ttl": 30}', False),  # Patroni's own default is 300 s
        ('{"primary_start_timeout": 300}', False),
        ("not json", True),
    ],
)
def test_prefers_failover_reads_patronis_primary_start_timeout(
    config: str | None, fails_over: bool
) -> None:
    assert entrypoint.prefers_failover(config) is fails_over


def test_another_members_key_or_none_is_left_alone(etcd: FakeEtcd) -> None:
    etcd.keys[KEY] = "m2"

    assert not entrypoint.release_leader_key_if_mine(settings_for(etcd, "m1"))
    del etcd.keys[KEY]
    assert not entrypoint.release_leader_key_if_mine(settings_for(etcd, "m1"))

    assert etcd.calls == ["/v3/kv/range", "/v3/kv/range"]  # no delete was tried


def test_the_delete_is_conditional_on_the_value() -> None:
    txn = entrypoint.release_txn(KEY, "m1")

    assert txn["compare"] == [
        {"key": b64(KEY), "target": "VALUE", "result": "EQUAL", "value": b64("m1")}
    ]
    assert txn["success"] == [{"request_delete_range": {"key": b64(KEY)}}]


def test_no_answer_from_etcd_leaves_the_key_to_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entrypoint, "LEADER_KEY_WAIT_SECONDS", 0.5)
    env = {**SECRETS, "FLY_PRIVATE_IP": "fdaa:0:1::2", "ETCD_ENDPOINTS": "http://127.0.0.1:9"}

    assert not entrypoint.release_leader_key_if_mine(read_settings(env))
