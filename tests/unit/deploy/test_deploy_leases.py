"""A deploy holds a lease on every machine it changes, as flyctl does."""

from __future__ import annotations

import threading

import pytest

from ferry.deploy.leases import LEASE_TTL, DeployLeases
from ferry.errors import UnavailableError
from ferry.model.lease import MachineLease
from tests.unit.deploy.deploy_fakes import FakeRolloutClient, make_machine
from tests.unit.deploy.test_deploy_rollout import run
from tests.unit.deploy.test_deploy_strategies import three_machines


def test_every_updated_machine_is_leased_before_the_first_change_and_released_after() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    changes_before_leases: list[int] = []
    acquire = client.acquire_lease

    def watched(app: str, machine_id: str, **kwargs: object) -> MachineLease:
        changes_before_leases.append(len(client.calls))
        assert kwargs.get("ttl") == LEASE_TTL  # flyctl's 13 s
        return acquire(app, machine_id, **kwargs)  # type: ignore[arg-type]

    client.acquire_lease = watched  # type: ignore[method-assign]
    result, _ = run(client, machines, ["ams", "sin"], "rolling")
    assert result.ok, result.failure
    # The fake refuses a change to a leased machine without its nonce: every update
    # went through, so each carried it.
    assert [c for c in client.calls if c[0] == "update"] == [
        ("update", "a1"),
        ("update", "a2"),
        ("update", "s1"),
    ]
    assert changes_before_leases == [0, 0, 0]
    assert client.lease_calls == [
        ("lease", "a1"),
        ("lease", "a2"),
        ("lease", "s1"),
        ("release", "a1"),
        ("release", "a2"),
        ("release", "s1"),
    ]
    assert client.leases == {}


def test_a_machine_leased_by_another_deploy_stops_the_deploy_before_any_change() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.leases["a2"] = "someone-elses"
    result, _ = run(client, machines, ["ams", "sin"], "rolling")
    assert result.failure == "could not lease a2: machine a2 has a lease held by admin (other)"
    assert result.failed_step is not None and result.failed_step.machine_id == "a2"
    assert client.calls == []
    assert client.leases == {"a2": "someone-elses"}  # a1's lease was given back, a2's kept


def test_bluegreen_retires_the_blues_under_their_leases_and_a_failed_deploy_releases_them() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.checks_after.update({"new1": 1, "new2": 1, "new3": 1})
    result, _ = run(client, machines, ["ams", "sin"], "bluegreen", checks=True)
    assert result.ok, result.failure
    assert {m for kind, m in client.lease_calls if kind == "lease"} == {"a1", "a2", "s1"}
    assert client.leases == {}  # destroyed with their machines; greens were never leased

    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.wait_outcome["a2"] = "fail"
    result, _ = run(client, machines, ["ams", "sin"], "rolling")
    assert not result.ok
    assert client.leases == {}


def test_leases_are_refreshed_in_the_background_until_released() -> None:
    client = FakeRolloutClient([make_machine("a1"), make_machine("a2", created_minute=1)])
    refreshed = threading.Event()
    acquire = client.acquire_lease

    def watched(app: str, machine_id: str, **kwargs: object) -> MachineLease:
        lease = acquire(app, machine_id, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("nonce") and machine_id == "a2":
            refreshed.set()
        return lease

    client.acquire_lease = watched  # type: ignore[method-assign]
    leases = DeployLeases(client, "web", every=0.01)
    assert leases.acquire(["a1", "a2"]) is None
    assert refreshed.wait(timeout=10), "no refresh round ran"
    leases.release()
    assert ("refresh", "a1") in client.lease_calls and ("refresh", "a2") in client.lease_calls
    assert client.lease_calls[-2:] == [("release", "a1"), ("release", "a2")]
    assert client.leases == {} and leases.nonce("a1") is None


def test_a_lease_that_cannot_be_refreshed_is_dropped() -> None:
    client = FakeRolloutClient([make_machine("a1"), make_machine("a2", created_minute=1)])
    leases = DeployLeases(client, "web", every=3600)
    assert leases.acquire(["a1", "a2"]) is None
    client.delete_machine("web", "a1", nonce=leases.nonce("a1"))
    leases.refresh()
    assert leases.nonce("a1") is None and leases.nonce("a2") == "nonce-a2"
    leases.release()
    assert client.leases == {}


def test_an_api_that_goes_away_while_leasing_leaves_no_lease_behind() -> None:
    client = FakeRolloutClient([make_machine("a1"), make_machine("a2", created_minute=1)])
    acquire = client.acquire_lease

    def flaky(app: str, machine_id: str, **kwargs: object) -> MachineLease:
        if machine_id == "a2":
            raise UnavailableError("the Ferry API at http://x is not reachable")
        return acquire(app, machine_id, **kwargs)  # type: ignore[arg-type]

    client.acquire_lease = flaky  # type: ignore[method-assign]
    leases = DeployLeases(client, "web")
    with pytest.raises(UnavailableError):
        leases.acquire(["a1", "a2"])
    assert client.leases == {}
