"""The agent tests run machines from the runtime tests' busybox image on a real runc driver."""

from __future__ import annotations

from ..runtime.conftest import busybox_image, busybox_reference, driver

__all__ = ["busybox_image", "busybox_reference", "driver"]
