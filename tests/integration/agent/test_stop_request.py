"""`ferry machine stop --signal/--timeout` through a real server, store and runc container.

The control plane is its own process, kill -9'd once the stop is requested;
the agent is driven one cycle at a time (``harness``).
"""

from __future__ import annotations

import pytest

from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration

# Ignores SIGTERM and SIGINT (tini forwards them to this shell); only SIGKILL ends it.
STUBBORN = "trap '' TERM INT; echo trapped; sleep 600 & wait"
# The config's stop: long enough that a test passing under it proves the request was used.
CONFIG_TIMEOUT = 30.0


def test_stop_request_signal_and_timeout_are_used_and_survive_kill_9(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("stubborn")
        machine_id = create_machine(
            client,
            "stubborn",
            busybox_reference,
            STUBBORN,
            restart={"policy": "no"},
            stop_config={"signal": "SIGTERM", "timeout": f"{CONFIG_TIMEOUT:g}s"},
        )
        Agent(client, driver, images).wait_armed(machine_id)

        client.stop_machine("stubborn", machine_id, signal="SIGKILL", timeout="1s")

    # The request is acknowledged: neither the server nor the agent may forget it.
    plane.kill_9()
    plane.start()
    with plane.client() as client:
        agent = Agent(client, driver, images)
        assert agent.machine(machine_id).effective_stop.signal == "SIGKILL"
        took = agent.stop_and_time(machine_id)
        stopped = client.get_machine("stubborn", machine_id)
        assert took < 5, f"SIGKILL stop took {took:.1f}s"
        assert stopped.exit_code == 137  # killed by SIGKILL, not by the config's SIGTERM
        assert driver.list() == []

        # A new start forgets the request; a stop with only a timeout keeps the
        # config's SIGTERM (ignored here), so SIGKILL comes after 2s, not 30s.
        client.start_machine("stubborn", machine_id)
        assert agent.machine(machine_id).stop_override is None
        agent.wait_armed(machine_id)
        client.stop_machine("stubborn", machine_id, timeout="2s")
        took = agent.stop_and_time(machine_id)
        assert 2 <= took < 8, f"stop with timeout 2s took {took:.1f}s"
        assert client.get_machine("stubborn", machine_id).exit_code == 137
        events = client.get_machine("stubborn", machine_id).events
        stopping = [e for e in events if e.type == "stop" and e.status == "stopping"]
        assert stopping[0].request["reason"] == "sending SIGTERM, SIGKILL after 2s"
        assert stopping[1].request["reason"] == "sending SIGKILL"
