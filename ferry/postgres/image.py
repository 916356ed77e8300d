"""Build the Postgres image once, keep it in a cache, and push it into the cluster registry.

Cache layout (``cache_dir``, default ``$FERRY_CACHE_DIR/postgres`` or
``/var/cache/ferry/postgres``)::

    layout/              an OCI image layout; its one image is tagged with the image key
    base-<key>.json      the base layer built for a base key: blob digest, diff id, seconds
    lock                 held while building, so two callers never build at once

``ensure_image`` builds only what the keys (``ferry.postgres.recipe``) say is
missing: nothing when the image is there (milliseconds), Ferry's small layer
when only the entrypoint changed (well under a second), everything when the
package recipe changed (about a minute: mmdebstrap downloads and installs the
packages from Debian's mirrors). ``publish_image`` copies the image into the
cluster registry with skopeo, which uploads only the blobs the registry lacks.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferry.deploy.images import CommandRunner, SubprocessRunner, pinned
from ferry.errors import RuntimeFailure
from ferry.postgres import oci_layout, recipe

__all__ = [
    "BuiltImage",
    "build_problem",
    "check_can_build",
    "default_cache_dir",
    "ensure_image",
    "publish_image",
]


@dataclass(frozen=True)
class BuiltImage:
    """An image in the cache: ``oci:{layout}:{tag}``; ``digest`` is its manifest's."""

    layout: Path
    tag: str
    digest: str
    built_base: bool  # False: the base layer came from the cache
    seconds: float  # time ``ensure_image`` took

    @property
    def oci_reference(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FERRY_CACHE_DIR", "/var/cache/ferry")) / "postgres"


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle = (cache_dir / "lock").open("a")
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot use the Postgres image cache {cache_dir}: {exc.strerror}",
            hint="run as root, or give a directory you can write with --cache-dir",
        ) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_problem(euid: int, mmdebstrap: str | None) -> RuntimeFailure | None:
    """Why this process cannot build the base (``None``: it can). Pure."""
    if euid != 0:
        return RuntimeFailure(
            "building the Postgres image needs root: mmdebstrap installs Debian packages"
            " into a root filesystem",
            hint="run it once as root (sudo ferry postgres image); later calls reuse the cache",
        )
    if mmdebstrap is None:
        return RuntimeFailure(
            "mmdebstrap is not installed: it builds the Postgres image from Debian's packages",
            hint="run scripts/install-deps.sh as root, or apt-get install mmdebstrap",
        )
    return None


def check_can_build() -> None:
    """Raise ``RuntimeFailure`` saying what to do when this process cannot build the base."""
    problem = build_problem(os.geteuid(), shutil.which("mmdebstrap"))
    if problem is not None:
        raise problem


def _read_base(cache_dir: Path, layout: Path, key: str) -> oci_layout.Layer | None:
    try:
        record = json.loads((cache_dir / f"base-{key}.json").read_text())
        layer = oci_layout.Layer(record["digest"], record["diff_id"], int(record["size"]))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError):
        return None
    return layer if oci_layout.blob_path(layout, layer.digest).is_file() else None


def _build_base(
    cache_dir: Path, layout: Path, key: str, runner: CommandRunner, say: Callable[[str], None]
) -> oci_layout.Layer:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="base-", dir=cache_dir) as scratch:
        tar_path = Path(scratch) / "rootfs.tar"
        say(f"Building the Postgres base from Debian {recipe.SUITE} packages (about a minute)")
        try:
            runner.run(recipe.mmdebstrap_argv(tar_path))
        except RuntimeFailure as exc:
            raise RuntimeFailure(
                f"mmdebstrap could not build the Postgres base: {exc.message}",
                hint="check that the machine's Debian mirror (its apt sources) answers",
            ) from exc
        installed = time.monotonic()
        say("Compressing the base layer")
        layer = oci_layout.add_tar_layer(layout, tar_path)
        tar_bytes = tar_path.stat().st_size
    for stale in cache_dir.glob("base-*.json"):
        stale.unlink()
    record = {
        "digest": layer.digest,
        "diff_id": layer.diff_id,
        "size": layer.size,
        "seconds": round(time.monotonic() - started, 1),
        "mmdebstrap_seconds": round(installed - started, 1),
        "uncompressed_bytes": tar_bytes,
        "packages": list(recipe.PACKAGES),
    }
    (cache_dir / f"base-{key}.json").write_text(json.dumps(record, indent=1))
    return layer


def ensure_image(
    cache_dir: Path | None = None,
    *,
    rebuild: bool = False,
    runner: CommandRunner | None = None,
    say: Callable[[str], None] = lambda _line: None,
    preflight: Callable[[], None] = check_can_build,
) -> BuiltImage:
    """The Postgres image in the cache, built first if its key is not there.

    ``rebuild`` builds the base again even when cached. ``preflight`` runs before
    a base build (tests replace the root/mmdebstrap check). Blocking; serialised by
    a lock in ``cache_dir``. Raises ``RuntimeFailure`` (saying what to do) when
    it must build and is not root, mmdebstrap is missing, or apt fails.
    """
    started = time.monotonic()
    cache = cache_dir or default_cache_dir()
    layout = cache / "layout"
    files = recipe.ferry_files()
    base = recipe.base_key()
    tag = recipe.image_key(base, files)
    with _locked(cache):
        oci_layout.init_layout(layout)
        cached = oci_layout.read_tags(layout).get(tag)
        if cached is not None and not rebuild:
            return BuiltImage(layout, tag, cached, False, time.monotonic() - started)
        base_layer = None if rebuild else _read_base(cache, layout, base)
        built_base = base_layer is None
        if base_layer is None:
            preflight()
            base_layer = _build_base(cache, layout, base, runner or SubprocessRunner(), say)
        ferry_layer = oci_layout.add_files_layer(layout, files)
        config = recipe.image_config([base_layer.diff_id, ferry_layer.diff_id], tag)
        digest = oci_layout.write_image(layout, tag, [base_layer, ferry_layer], config)
        oci_layout.prune_blobs(layout, keep=set())
    return BuiltImage(layout, tag, digest, built_base, time.monotonic() - started)


def publish_image(image: BuiltImage, registry: str, *, runner: CommandRunner | None = None) -> str:
    """Copy ``image`` to ``<registry>/ferry-postgres:<tag>``; return it pinned by digest.

    Blocking; uploads only blobs the registry does not have (a repeat takes well
    under a second). Raises ``RuntimeFailure`` when skopeo fails (registry down).
    """
    destination = f"{registry}/{recipe.IMAGE_REPOSITORY}:{image.tag}"
    with tempfile.TemporaryDirectory(prefix="ferry-pg-push-") as scratch:
        digestfile = Path(scratch) / "digest"
        (runner or SubprocessRunner()).run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--digestfile",
                str(digestfile),
                image.oci_reference,
                f"docker://{destination}",
            ]
        )
        try:
            digest = digestfile.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RuntimeFailure(f"skopeo wrote no digest for {destination}") from None
    return pinned(f"{registry}/{recipe.IMAGE_REPOSITORY}", digest)
