"""When the volume keeper reports to the control plane: at once for what users wait
for (a state, an error, a snapshot), figures at most every ``FIGURES_SECONDS``."""

from __future__ import annotations

from typing import Any

from ferry.agent.volume_loop import FIGURES_SECONDS, report_due


def report(state: str = "ready", used: int = 100, capacity: int = 10_000) -> dict[str, Any]:
    return {
        "capacity_bytes": capacity,
        "online_resize": False,
        "volumes": [{"id": "vol_1", "state": state, "size_gb": 1, "bytes_used": used}],
        "snapshots": [],
    }


def test_the_first_report_is_sent() -> None:
    assert report_due(None, report(), 0.0)


def test_an_unchanged_report_is_not_sent_again() -> None:
    assert not report_due(report(), report(), FIGURES_SECONDS * 2)


def test_a_state_change_is_sent_at_once() -> None:
    assert report_due(report(), report(state="failed"), 0.1)


def test_a_new_snapshot_status_is_sent_at_once() -> None:
    made = {**report(), "snapshots": [{"id": "vs_1", "status": "created", "size": 5}]}
    assert report_due(report(), made, 0.1)


def test_moving_figures_wait_for_their_interval() -> None:
    assert not report_due(report(), report(used=200, capacity=9_000), FIGURES_SECONDS / 2)
    assert report_due(report(), report(used=200, capacity=9_000), FIGURES_SECONDS)
