"""The in-process change notifier behind the long-poll endpoints.

Writers call ``notify(host_id)`` after a machine write has committed (from
any thread); long-poll handlers read ``version(host_id)`` *before* they read
the store, then ``await wait(host_id, seen, timeout)``. A commit that lands
between the read and the wait has already bumped the version, so ``wait``
returns at once: no change is ever missed, and nobody polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

__all__ = ["ChangeNotifier"]


@dataclass(eq=False)
class _Waiter:
    key: str | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ChangeNotifier:
    """Counts committed changes per host and wakes the coroutines waiting for them.

    Thread-safe; ``wait`` must be awaited on a running event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._per_host: dict[str, int] = {}
        self._waiters: list[_Waiter] = []

    def version(self, host_id: str | None = None) -> int:
        """Changes seen so far for ``host_id`` (or for every host when ``None``)."""
        with self._lock:
            return self._total if host_id is None else self._per_host.get(host_id, 0)

    def notify(self, host_id: str | None = None) -> None:
        """Record a committed change of ``host_id``'s machines (``None``: of everything)
        and wake the matching waiters. Never blocks on them."""
        with self._lock:
            self._total += 1
            if host_id is None:
                for key in self._per_host:
                    self._per_host[key] += 1
                woken, self._waiters = self._waiters, []
            else:
                self._per_host[host_id] = self._per_host.get(host_id, 0) + 1
                # The host's own watchers first (its agent acts on the change), then
                # the store-wide ones (edges' routes, which only follow it).
                woken = [w for w in self._waiters if w.key == host_id]
                woken += [w for w in self._waiters if w.key is None]
                self._waiters = [w for w in self._waiters if w.key not in (None, host_id)]
        for waiter in woken:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    async def wait(self, host_id: str | None, seen: int, timeout: float) -> bool:
        """Wait until ``version(host_id) > seen`` or ``timeout`` seconds pass.

        Returns ``True`` on a change, ``False`` on timeout. Cancellable. After a change
        it yields to the event loop once before returning, so the request that made the
        change is answered first.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            current = self._total if host_id is None else self._per_host.get(host_id, 0)
            if current > seen:
                return True
            waiter = _Waiter(host_id, loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        # The writer's own response is queued behind these wake-ups; yield once so it is
        # sent before the woken watchers read the store (on the event loop, one by one).
        await asyncio.sleep(0)
        return True
