"""A full deploy with a lease held the way Fly's clients hold it, against the real server.

fly-go's calls, over plain HTTP with the real wire shapes: ``POST …/lease?ttl=13``
(no body), ``POST …/{id}`` with the new config and ``fly-machine-lease-nonce``,
``GET …/wait?state=started&instance_id=…``, a refresh with the nonce, and
``DELETE …/lease``. The control plane is its own process (kill -9'd mid-deploy
to prove the lease is durable); the machine runs on a real runc driver driven
by the real agent code (``Agent`` from ``harness``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from ferry.agent.reconcile import plan_host
from ferry.model import MachineState
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import Agent, OneImage, machine_config, register_host

pytestmark = pytest.mark.integration

NONCE = "fly-machine-lease-nonce"
M = "/v1/apps/web/machines"


def _config(reference: str, word: str) -> dict[str, Any]:
    config = machine_config(
        reference,
        f"echo {word}; sleep 600",
        restart={"policy": "no"},
        stop_config={"signal": "SIGKILL"},
    )
    return config.model_dump(mode="json", exclude_none=True)


def test_deploy_under_a_lease_as_flyctl_does_it(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("web")
        agent = Agent(client, driver, images)
        with plane.http(timeout=30) as http:
            first = http.post(M, json={"config": _config(busybox_reference, "v1")}).json()
            machine_id = first["id"]
            agent.reach(machine_id, MachineState.STARTED)

            # flyctl: acquire a 13 s lease (fly-go sends the ttl as a query parameter).
            acquired = http.post(f"{M}/{machine_id}/lease?ttl=13")
            assert acquired.status_code == 200, acquired.text
            nonce = acquired.json()["data"]["nonce"]

            # Another client cannot change the machine meanwhile; nothing changes.
            other = http.post(f"{M}/{machine_id}", json={"config": _config(busybox_reference, "x")})
            assert other.status_code == 409 and "held by admin" in other.json()["error"]
            assert http.get(f"{M}/{machine_id}").json()["instance_id"] == first["instance_id"]

    # The lease is durable: a control plane killed with SIGKILL still knows it.
    plane.kill_9()
    plane.start()
    with plane.client() as client, plane.http(timeout=30) as http:
        agent = Agent(client, driver, images)
        assert http.get(f"{M}/{machine_id}/lease").json()["data"]["nonce"] == nonce
        refreshed = http.post(f"{M}/{machine_id}/lease?ttl=13", headers={NONCE: nonce})
        assert refreshed.status_code == 200 and refreshed.json()["data"]["nonce"] == nonce

        updated = http.post(
            f"{M}/{machine_id}",
            json={"config": _config(busybox_reference, "v2")},
            headers={NONCE: nonce},
        )
        assert updated.status_code == 200, updated.text
        new_instance = updated.json()["instance_id"]
        assert new_instance != first["instance_id"]

        # flyctl waits for the new version while the host agent replaces the container.
        answer: dict[str, httpx.Response] = {}
        query = f"state=started&instance_id={new_instance}&timeout=60"
        waiter = threading.Thread(
            target=lambda: answer.setdefault("wait", http.get(f"{M}/{machine_id}/wait?{query}"))
        )
        waiter.start()
        agent.converge(
            lambda: (
                (m := agent.machine(machine_id)).state is MachineState.STARTED
                and m.instance_id == new_instance
            )
        )
        waiter.join(timeout=30)
        assert answer["wait"].status_code == 200, answer["wait"].text
        assert answer["wait"].json() == {"ok": True, "state": "started"}
        agent.wait_output(machine_id, "v2")  # the new version's process, not the old one's

        # Metadata is written without the nonce (fly-go sends none) and restarts nothing:
        # the agent, given the labelled machine, has no step to take.
        labelled = http.post(f"{M}/{machine_id}/metadata/role", json={"value": "web"})
        assert labelled.status_code == 204
        machine = agent.machine(machine_id)
        assert (machine.config.metadata, machine.instance_id) == ({"role": "web"}, new_instance)
        assert plan_host([machine], driver.list(), agent.memory, set(), time.monotonic()) == []

        released = http.delete(f"{M}/{machine_id}/lease", headers={NONCE: nonce})
        assert released.status_code == 200
        assert http.get(f"{M}/{machine_id}/lease").status_code == 404
        # Released: the old nonce is refused, and anyone may act without one.
        assert http.post(f"{M}/{machine_id}/stop", headers={NONCE: nonce}).status_code == 412
        assert http.post(f"{M}/{machine_id}/stop").status_code == 200
        agent.reach(machine_id, MachineState.STOPPED)
        versions = http.get(f"{M}/{machine_id}/versions").json()
        assert [v["version"] for v in versions] == [new_instance, first["instance_id"]]
