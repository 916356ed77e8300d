"""Fixtures of the agent tests: a control plane process, and the runtime tests' busybox
image (pulled once) served to machines on a real runc driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.runtime.driver import LocalImage

from ..runtime.conftest import busybox_image, busybox_reference, driver
from .harness import ControlPlane, OneImage

__all__ = ["busybox_image", "busybox_reference", "driver", "images", "plane"]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A started control plane under ``tmp_path/home``; SIGKILLed at the end."""
    running = ControlPlane(tmp_path / "home")
    running.start()
    try:
        yield running
    finally:
        running.kill_9()


@pytest.fixture
def images(busybox_reference: str, busybox_image: LocalImage) -> OneImage:
    """The host image store an ``Agent`` pulls from: the busybox image only."""
    return OneImage(busybox_reference, busybox_image)
