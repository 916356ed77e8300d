"""Whether a container's cgroup is frozen, read while the cgroup may be going away."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ferry.runtime import host_os


def test_a_frozen_v2_cgroup_reads_frozen_and_a_missing_one_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_os, "CGROUP_ROOT", tmp_path)
    (tmp_path / "ferry" / "m1").mkdir(parents=True)
    (tmp_path / "ferry" / "m1" / "cgroup.freeze").write_text("1\n")
    assert host_os.cgroup_frozen("/ferry/m1") is True
    assert host_os.cgroup_frozen("/ferry/gone") is False


def test_a_cgroup_removed_while_it_is_read_is_not_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel answers ENODEV for a cgroup being removed: that killed the agent's
    reconcile loop once (every container listing reads it)."""
    monkeypatch.setattr(host_os, "CGROUP_ROOT", tmp_path)

    def vanishing(self: Path, *args: object, **kwargs: object) -> str:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(Path, "read_text", vanishing)
    assert host_os.cgroup_frozen("/ferry/m1") is False
