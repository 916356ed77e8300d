"""Fixtures for the runtime integration tests: a pushed busybox image, a cache, a driver."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.runtime.driver import ContainerSpec, LocalImage
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRange

from ..images import RunningRegistry, build_busybox_image, push_image


@pytest.fixture(scope="session")
def busybox_reference(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``ADDR/busybox@sha256:…`` of a busybox image whose default command is ``sh``."""
    layout = build_busybox_image(
        tmp_path_factory.mktemp("busybox-image"), cmd=("sh",), env=("IMAGE_VAR=from-image",)
    )
    return push_image(layout, registry.address, "busybox", "v1")


@pytest.fixture(scope="session")
def busybox_image(
    registry: RunningRegistry, busybox_reference: str, tmp_path_factory: pytest.TempPathFactory
) -> LocalImage:
    """The busybox image, pulled and unpacked once for every driver test."""
    store = RegistryImageStore(
        tmp_path_factory.mktemp("image-cache"), insecure_registries=[registry.address]
    )
    return store.ensure(busybox_reference)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[RuncDriver]:
    """A driver on a fresh state dir; every container it owns is destroyed afterwards."""
    runc_driver = RuncDriver(tmp_path / "state", cgroup_parent=f"ferry-test-{os.getpid()}")
    try:
        yield runc_driver
    finally:
        for status in runc_driver.list():
            runc_driver.destroy(status.container_id)
        runc_driver.cleanup()


def container_spec(
    image: LocalImage,
    script: str,
    *,
    env: dict[str, str] | None = None,
    memory_mb: int = 64,
    labels: dict[str, str] | None = None,
    id_range: IdRange | None = None,
) -> ContainerSpec:
    """A spec that runs ``sh -c script`` in ``image`` under a fresh id (in a user
    namespace mapped to ``id_range`` when given)."""
    return ContainerSpec(
        container_id=f"t-{uuid.uuid4().hex[:12]}",
        image=image,
        process_args=("sh", "-c", script),
        env=env or {},
        memory_mb=memory_mb,
        labels=labels or {},
        id_range=id_range,
    )
