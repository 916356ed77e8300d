"""The image cache against a real registry: pull by digest once, then serve from disk."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ferry.errors import NotFoundError
from ferry.runtime.driver import ImageConfig
from ferry.runtime.images import RegistryImageStore

from ..images import RunningRegistry, build_busybox_image, push_image, run_tool

pytestmark = pytest.mark.integration


def _store(cache: Path, registry: RunningRegistry) -> RegistryImageStore:
    return RegistryImageStore(cache, insecure_registries=[registry.address])


def test_pull_by_digest_unpacks_the_image_and_reads_its_config(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = build_busybox_image(
        tmp_path / "build",
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo hi",),
        env=("GREETING=hello",),
        working_dir="/srv",
        user="1000:1000",
    )
    reference = push_image(layout, registry.address, "configured", "v1")

    image = _store(tmp_path / "cache", registry).ensure(reference)

    assert image.digest == reference.split("@")[1]
    assert (image.rootfs / "bin" / "busybox").is_file()
    assert image.config == ImageConfig(
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo hi",),
        env=("GREETING=hello",),
        working_dir="/srv",
        user="1000:1000",
    )


def test_second_ensure_is_served_from_the_cache_without_the_registry(
    registry: RunningRegistry, busybox_reference: str, tmp_path: Path
) -> None:
    first = _store(tmp_path / "cache", registry).ensure(busybox_reference)
    digest = busybox_reference.split("@")[1]
    # port 1 on loopback answers nothing: any network access would fail
    offline = RegistryImageStore(tmp_path / "cache").ensure(f"127.0.0.1:1/busybox@{digest}")

    assert offline == first


def test_tag_reference_resolves_to_the_pushed_digest(
    registry: RunningRegistry, busybox_reference: str, tmp_path: Path
) -> None:
    image = _store(tmp_path / "cache", registry).ensure(f"{registry.address}/busybox:v1")

    assert image.digest == busybox_reference.split("@")[1]


def test_images_with_a_common_layer_store_it_once(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = build_busybox_image(tmp_path / "build", cmd=("sh",))
    first_reference = push_image(layout, registry.address, "shared-a", "v1")
    run_tool(["umoci", "config", "--image", f"{layout}:latest", "--config.cmd=true"])
    second_reference = push_image(layout, registry.address, "shared-b", "v1")
    store = _store(tmp_path / "cache", registry)

    first, second = store.ensure(first_reference), store.ensure(second_reference)

    assert first.digest != second.digest
    assert first.rootfs != second.rootfs
    assert second.config.cmd == ("true",)
    blobs = (tmp_path / "cache" / "oci" / "blobs" / "sha256").iterdir()
    assert sum(1 for blob in blobs if blob.stat().st_size > 500_000) == 1


def test_missing_repository_is_not_found(registry: RunningRegistry, tmp_path: Path) -> None:
    missing = f"{registry.address}/nothing-here@sha256:{'0' * 64}"

    with pytest.raises(NotFoundError, match="not found in the registry"):
        _store(tmp_path / "cache", registry).ensure(missing)


def test_unknown_digest_of_a_known_repository_is_not_found(
    registry: RunningRegistry, busybox_reference: str, tmp_path: Path
) -> None:
    name = busybox_reference.split("@")[0]

    with pytest.raises(NotFoundError):
        _store(tmp_path / "cache", registry).ensure(f"{name}@sha256:{'ab' * 32}")
    assert list((tmp_path / "cache" / "rootfs").iterdir()) == []


def test_concurrent_ensure_in_threads_and_processes_unpacks_once(
    registry: RunningRegistry, busybox_reference: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    script = (
        "from pathlib import Path; from ferry.runtime.images import RegistryImageStore\n"
        f"store = RegistryImageStore(Path({str(cache)!r}), "
        f"insecure_registries=[{registry.address!r}])\n"
        f"print(store.ensure({busybox_reference!r}).rootfs)"
    )
    other_process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(
            pool.map(lambda _: _store(cache, registry).ensure(busybox_reference), range(4))
        )
    output, _ = other_process.communicate(timeout=60)

    assert other_process.returncode == 0
    assert {str(image.rootfs) for image in images} == {output.decode().strip()}
    assert [p.name for p in (cache / "rootfs").iterdir()] == [images[0].rootfs.name]


def test_docker_format_image_is_pulled_by_its_digest(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = build_busybox_image(tmp_path / "build", cmd=("sh",))
    reference = push_image(layout, registry.address, "docker-format", "v1", manifest_format="v2s2")

    image = _store(tmp_path / "cache", registry).ensure(reference)

    assert image.digest == reference.split("@")[1]
    assert image.config.cmd == ("sh",)
