"""Pure placement of machines on hosts: (request, hosts snapshot) -> placement or reason.

The rule, Nomad-style: among the up hosts of the requested region that have
room, pick the one with the fewest machines of the app (spread), then the most
free memory, then the lowest host id. ``place_machine`` applies it to one
snapshot; ``Scheduler`` keeps an index so thousands of placements in a row stay
fast, and always answers what ``place_machine`` would on its current snapshot.

No I/O, no clock, no randomness.
"""

from __future__ import annotations

from ferry.scheduler._index import Scheduler
from ferry.scheduler._rule import place_machine
from ferry.scheduler._types import HostCapacity, NoPlacement, Placement, PlacementRequest

__all__ = [
    "HostCapacity",
    "NoPlacement",
    "Placement",
    "PlacementRequest",
    "Scheduler",
    "place_machine",
]
