"""The change notifier: who wakes, and in which order."""

from __future__ import annotations

import asyncio

from ferry.server.watch import ChangeNotifier


def test_a_hosts_own_watchers_wake_before_the_store_wide_ones() -> None:
    """The agent acts on its host's change; the edges only follow it: the agent goes first."""

    async def scenario() -> list[str]:
        notifier = ChangeNotifier()
        order: list[str] = []

        async def watch(name: str, key: str | None) -> None:
            if await notifier.wait(key, notifier.version(key), timeout=5):
                order.append(name)

        tasks = [
            asyncio.create_task(watch("edge", None)),
            asyncio.create_task(watch("agent ams-1", "ams-1")),
            asyncio.create_task(watch("agent ams-2", "ams-2")),
        ]
        while len(notifier._waiters) < 3:
            await asyncio.sleep(0)
        notifier.notify("ams-1")
        await asyncio.wait(tasks[:2], timeout=5)
        assert not tasks[2].done()  # another host's watcher sleeps on
        tasks[2].cancel()
        return order

    assert asyncio.run(scenario()) == ["agent ams-1", "edge"]
