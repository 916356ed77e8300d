"""The control plane: the Machines API over a ``StateStore``, the scheduler and liveness.

Entry points: ``create_app`` (an ASGI app for tests and embedding) and
``run_server`` (what ``ferry server`` calls). Nothing but the server imports
this package: clients go through ``ferry.client``.
"""

from __future__ import annotations

from ferry.server.app import create_app
from ferry.server.clock import Clock, SystemClock
from ferry.server.run import run_server

__all__ = ["Clock", "SystemClock", "create_app", "run_server"]
