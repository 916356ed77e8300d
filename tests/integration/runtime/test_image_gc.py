"""The image cache's garbage collection against a real registry, real overlays and runc."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ferry.runtime.driver import ContainerState, LocalImage
from ferry.runtime.image_gc import GcPolicy
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRange

from ..images import RunningRegistry, build_busybox_image, push_image, run_tool
from .conftest import container_spec

pytestmark = pytest.mark.integration

HOUR = 3600.0
ROUNDS = 30


def _store(cache: Path, registry: RunningRegistry) -> RegistryImageStore:
    return RegistryImageStore(cache, insecure_registries=[registry.address])


def _age(store: RegistryImageStore, image: LocalImage, hours: float) -> None:
    """Pretend ``image`` was last used ``hours`` ago."""
    then = time.time() - hours * HOUR
    os.utime(store.cache_dir / "used" / image.digest.removeprefix("sha256:"), (then, then))


def _layout_tags(store: RegistryImageStore) -> set[str]:
    index = json.loads((store.layout / "index.json").read_text())
    return {d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]}


def _blobs(store: RegistryImageStore) -> set[str]:
    return {f"sha256:{p.name}" for p in (store.layout / "blobs" / "sha256").iterdir()}


def _image_blobs(store: RegistryImageStore, image: LocalImage) -> set[str]:
    manifest = json.loads(
        (store.layout / "blobs" / "sha256" / image.digest.removeprefix("sha256:")).read_text()
    )
    layers = {layer["digest"] for layer in manifest["layers"]}
    return {image.digest, manifest["config"]["digest"], *layers}


def _runs(image: LocalImage) -> bool:
    done = subprocess.run(
        [str(image.rootfs / "bin" / "busybox"), "echo", "ok"], capture_output=True, check=False
    )
    return done.returncode == 0 and done.stdout == b"ok\n"


@pytest.fixture(scope="module")
def three_references(
    registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    """Three images: the first with a layer of its own, the other two sharing one."""
    alone = build_busybox_image(tmp_path_factory.mktemp("gc-alone"), files={"etc/who": "a"})
    shared = build_busybox_image(tmp_path_factory.mktemp("gc-shared"), cmd=("sh",))
    first = push_image(alone, registry.address, "gc-alone", "v1")
    second = push_image(shared, registry.address, "gc-shared", "v1")
    run_tool(["umoci", "config", "--image", f"{shared}:latest", "--config.cmd=true"])
    third = push_image(shared, registry.address, "gc-shared", "v2")
    return [first, second, third]


def test_collect_deletes_the_unused_images_beyond_the_rollback_set_and_keeps_the_rest(
    registry: RunningRegistry, three_references: list[str], tmp_path: Path
) -> None:
    store = _store(tmp_path / "cache", registry)
    oldest, in_use, rollback = (store.ensure(ref) for ref in three_references)
    _age(store, oldest, 3)
    _age(store, in_use, 5)
    _age(store, rollback, 2)
    oldest_blobs = _image_blobs(store, oldest)

    deleted = store.collect([three_references[1]], GcPolicy(keep_unused=1))

    assert [d.digest for d in deleted] == [oldest.digest]
    assert deleted[0].size_bytes > 1_000_000  # its rootfs and its own busybox layer
    assert "unused for 3 h" in deleted[0].reason
    assert sorted(p.name for p in (store.cache_dir / "rootfs").iterdir()) == sorted(
        image.rootfs.name for image in (in_use, rollback)
    )
    assert not (store.cache_dir / "configs" / f"{oldest.rootfs.name}.json").exists()
    assert oldest.rootfs.name not in _layout_tags(store)
    kept_blobs = _image_blobs(store, in_use) | _image_blobs(store, rollback)
    assert oldest_blobs - kept_blobs  # its own manifest, config and layer ...
    assert _blobs(store) == kept_blobs  # ... are gone, the shared ones stay
    # the kept images are whole and served from the cache without the registry
    offline = RegistryImageStore(tmp_path / "cache")
    for image in (in_use, rollback):
        assert offline.ensure(f"127.0.0.1:1/gone@{image.digest}") == image
        assert _runs(image)


def test_a_collected_image_is_pulled_again_by_ensure(
    registry: RunningRegistry, three_references: list[str], tmp_path: Path
) -> None:
    store = _store(tmp_path / "cache", registry)
    image = store.ensure(three_references[0])
    _age(store, image, 1)
    assert [d.digest for d in store.collect([], GcPolicy(keep_unused=0))] == [image.digest]
    assert not image.rootfs.exists()

    again = store.ensure(three_references[0])

    assert again == image
    assert _runs(again)


def test_recently_used_images_survive_a_collect(
    registry: RunningRegistry, three_references: list[str], tmp_path: Path
) -> None:
    store = _store(tmp_path / "cache", registry)
    images = [store.ensure(ref) for ref in three_references]

    assert store.collect([], GcPolicy(keep_unused=0, grace_seconds=600)) == []
    assert all(_runs(image) for image in images)


@pytest.mark.parametrize("id_range", [None, IdRange(900_000)], ids=["host-ids", "userns"])
def test_an_image_a_container_mounts_is_kept_until_the_container_is_destroyed(
    registry: RunningRegistry,
    three_references: list[str],
    driver: RuncDriver,
    tmp_path: Path,
    id_range: IdRange | None,
) -> None:
    store = _store(tmp_path / "cache", registry)
    image = store.ensure(three_references[0])
    _age(store, image, 10)
    # in a user namespace the overlay's lower layer is an idmapped view of the rootfs
    spec = container_spec(image, "sleep 60", id_range=id_range)
    driver.start(spec)

    assert store.collect([], GcPolicy(keep_unused=0)) == []
    assert driver.inspect(spec.container_id).state is ContainerState.RUNNING
    assert _runs(image)

    driver.destroy(spec.container_id)
    _age(store, image, 10)  # collect counted the mount as a use

    assert [d.digest for d in store.collect([], GcPolicy(keep_unused=0))] == [image.digest]


def test_docker_format_images_lose_both_their_tags_and_all_their_blobs(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = build_busybox_image(tmp_path / "build", cmd=("sh",))
    reference = push_image(layout, registry.address, "gc-docker", "v1", manifest_format="v2s2")
    store = _store(tmp_path / "cache", registry)
    image = store.ensure(reference)
    assert len(_layout_tags(store)) == 2  # the Docker manifest and its OCI conversion
    _age(store, image, 1)

    store.collect([], GcPolicy(keep_unused=0))

    assert _layout_tags(store) == set()
    assert _blobs(store) == set()
    assert store.ensure(reference) == image


def test_collect_removes_what_a_crash_left_behind(
    registry: RunningRegistry, three_references: list[str], tmp_path: Path
) -> None:
    store = _store(tmp_path / "cache", registry)
    image = store.ensure(three_references[0])
    rootfs_dir = store.cache_dir / "rootfs"
    # a collect that crashed after moving a rootfs to the trash, an unpack that
    # crashed mid-way, a config being written and a blob being pulled
    image.rootfs.rename(rootfs_dir / f".trash-{image.rootfs.name}-0000")
    (rootfs_dir / f".unpack-{'f' * 64}" / "bin").mkdir(parents=True)
    (store.cache_dir / "configs" / f"{'f' * 64}.tmp").write_text("{")
    (store.layout / "oci-put-blob123").write_text("half")

    again = store.ensure(three_references[0])  # the config alone is not an image: unpack again
    store.collect([three_references[0]])

    assert _runs(again)
    assert [p.name for p in rootfs_dir.iterdir()] == [image.rootfs.name]
    assert [p.name for p in (store.cache_dir / "configs").iterdir()] == [
        f"{image.rootfs.name}.json"
    ]
    assert not (store.layout / "oci-put-blob123").exists()


def _race_ensure_and_collect(
    cache: Path, registry: RunningRegistry, reference: str, ensure_delay: float
) -> tuple[LocalImage, int]:
    """Start ``collect`` (of everything unused) and, ``ensure_delay`` seconds later,
    ``ensure``, each with its own store; return the ensured image and how many images
    collect deleted."""
    start = threading.Barrier(2)

    def ensure() -> LocalImage:
        start.wait()
        time.sleep(ensure_delay)  # deliberate: where in collect's run ensure lands is the test
        return _store(cache, registry).ensure(reference)

    def collect() -> int:
        start.wait()
        policy = GcPolicy(keep_unused=0, grace_seconds=60)
        return len(_store(cache, registry).collect([], policy))

    with ThreadPoolExecutor(max_workers=2) as pool:
        ensured, collected = pool.submit(ensure), pool.submit(collect)
        return ensured.result(timeout=120), collected.result(timeout=120)


def test_concurrent_ensure_and_collect_of_one_digest_never_leave_a_broken_rootfs(
    registry: RunningRegistry, three_references: list[str], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    reference = three_references[2]
    collect_first = 0
    for round_number in range(ROUNDS):
        store = _store(cache, registry)
        _age(store, store.ensure(reference), 1)

        # from "ensure first" to "collect first", through every step of collect
        delay = round_number * 0.0002
        image, deleted = _race_ensure_and_collect(cache, registry, reference, delay)

        # ensure returned before collect looked (so collect kept it) or after collect
        # deleted it (so ensure pulled it again): either way its rootfs is whole
        assert _runs(image)
        assert [p.name for p in (cache / "rootfs").iterdir()] == [image.rootfs.name]
        collect_first += deleted
    print(f"collect deleted the image before ensure in {collect_first} of {ROUNDS} rounds")
