"""Fixtures of the agent tests: the runtime tests' busybox image (pulled once), served
to machines on a real runc driver. ``plane`` (a control plane process) is the
integration tests' own."""

from __future__ import annotations

import pytest

from ferry.runtime.driver import LocalImage

from ..runtime.conftest import busybox_image, busybox_reference, driver
from .harness import OneImage

__all__ = ["busybox_image", "busybox_reference", "driver", "images"]


@pytest.fixture
def images(busybox_reference: str, busybox_image: LocalImage) -> OneImage:
    """The host image store an ``Agent`` pulls from: the busybox image only."""
    return OneImage(busybox_reference, busybox_image)
