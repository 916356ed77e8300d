"""The host's content-addressed image cache: pull by digest with skopeo, unpack once with umoci.

Layout of ``cache_dir``::

    oci/                  ONE shared OCI image layout; tag = digest hex, blobs shared
    rootfs/<hex>/         the unpacked, read-only rootfs of each image (overlay lower)
    configs/<hex>.json    its ImageConfig (entrypoint, cmd, env, working dir, user)
    used/<hex>            touched whenever the image is ensured or seen in use: its mtime
                          is the image's last use, which survives restarts
    locks/                fcntl lock files: one per digest, one for the layout, one for GC

A rootfs is unpacked into a temporary dir and renamed into place, and its config
is written before that rename, so a crash never leaves a half image that looks
whole. A second ``ensure`` of a present digest touches no network and takes only
a shared lock.

``collect`` garbage-collects the cache: ``image_cache_gc.CacheCollector`` does the
work (deletion is crash-safe: a rootfs goes to ``rootfs/.trash-…`` first), and
``image_gc`` makes the decision. ``image_cache`` holds the paths, locks and use
marks that pulling and collecting share.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ferry.errors import NotFoundError, RuntimeFailure, ValidationError
from ferry.runtime.driver import ImageConfig, LocalImage
from ferry.runtime.image_cache import (
    OCI_MANIFEST,
    STAGING_PREFIX,
    blob_path,
    digest_lock_path,
    discard_rootfs,
    is_hex_digest,
    layout_lock_path,
    locked,
    mark_used,
)
from ferry.runtime.image_cache_gc import MOUNTINFO, CacheCollector
from ferry.runtime.image_gc import GcPolicy, ImageDeletion

__all__ = ["RegistryImageStore", "digest_hex", "image_config_from_oci", "split_reference"]

_TOOL_TIMEOUT = 600
_NOT_FOUND_MARKERS = ("manifest unknown", "name unknown", "not found", "404")


def _without_tag(name: str) -> str:
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.partition(':')[0]}" if slash else name


def split_reference(reference: str) -> tuple[str, str | None]:
    """``host:port/repo@sha256:<hex>`` → (``host:port/repo``, ``sha256:<hex>``); a tag
    next to the digest is dropped. A tag reference (``host/repo:tag``) → (reference, None).

    Raises ``ValidationError`` for an empty reference or a malformed digest.
    """
    reference = reference.strip().removeprefix("docker://")
    if not reference:
        raise ValidationError("empty image reference", hint="give e.g. registry:5000/app@sha256:…")
    name, at, digest = reference.partition("@")
    if not at:
        return reference, None
    algorithm, _, hex_digest = digest.partition(":")
    valid_hex = len(hex_digest) == 64 and all(c in "0123456789abcdef" for c in hex_digest)
    if algorithm != "sha256" or not valid_hex or not name:
        raise ValidationError(
            f"invalid image digest in {reference!r}",
            hint="a digest reference looks like registry:5000/app@sha256:<64 hex digits>",
        )
    return _without_tag(name), digest


def digest_hex(reference: str) -> str | None:
    """The ``<hex>`` of a ``sha256:<hex>`` digest or of a digest reference; ``None`` for a
    tag reference or anything malformed (it names no digest this host could hold). Pure."""
    if reference.startswith("sha256:"):
        hex_digest = reference.removeprefix("sha256:")
        return hex_digest if is_hex_digest(hex_digest) else None
    try:
        _, digest = split_reference(reference)
    except ValidationError:
        return None
    return digest.removeprefix("sha256:") if digest else None


def image_config_from_oci(config_blob: dict[str, Any]) -> ImageConfig:
    """The run-relevant fields of an OCI/Docker image config JSON. Pure."""
    run = config_blob.get("config") or {}
    return ImageConfig(
        entrypoint=tuple(run.get("Entrypoint") or ()),
        cmd=tuple(run.get("Cmd") or ()),
        env=tuple(run.get("Env") or ()),
        working_dir=run.get("WorkingDir") or "/",
        user=run.get("User") or "",
    )


class RegistryImageStore:
    """``ImageStore`` that pulls with skopeo and unpacks with umoci. Blocking; thread- and
    process-safe: concurrent ``ensure`` of one digest does the work once, and ``collect``
    never deletes an image from under an ``ensure``."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        insecure_registries: Iterable[str] = (),
        mountinfo: Path = MOUNTINFO,
    ) -> None:
        """``mountinfo``: where ``collect`` learns which rootfs mounted overlays use."""
        self.cache_dir = cache_dir.absolute()
        self.layout = self.cache_dir / "oci"
        self.insecure_registries = frozenset(insecure_registries)
        self._collector = CacheCollector(self.cache_dir, self.layout, mountinfo=mountinfo)
        for sub in ("rootfs", "configs", "locks", "used"):
            (self.cache_dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def mountinfo(self) -> Path:
        """Where ``collect`` learns which rootfs mounted overlays use."""
        return self._collector.mountinfo

    # -- public -------------------------------------------------------------

    def ensure(self, reference: str) -> LocalImage:
        """Pull (by digest) and unpack once; return the local image, marked as used now.

        A tag reference is first resolved to its digest in the registry. Raises
        ``NotFoundError`` if the registry has no such image, ``RuntimeFailure`` if the
        registry is unreachable or skopeo/umoci fail, ``ValidationError`` for a bad
        reference.
        """
        name, digest = split_reference(reference)
        if digest is None:
            digest = self.resolve_digest(reference)
            name = _without_tag(name)
        hex_digest = digest.removeprefix("sha256:")
        # Checking and marking under the digest's lock orders this against ``collect``:
        # it either deleted the image before (we pull again) or sees the fresh mark.
        with locked(digest_lock_path(self.cache_dir, hex_digest), shared=True):
            cached = self._cached(hex_digest)
            if cached is not None:
                mark_used(self.cache_dir, hex_digest)
                return cached
        with locked(digest_lock_path(self.cache_dir, hex_digest)):
            cached = self._cached(hex_digest)
            if cached is None:
                if not self._in_layout(hex_digest):
                    self._pull(name, digest)
                cached = self._unpack(hex_digest)
            mark_used(self.cache_dir, hex_digest)
            return cached

    def resolve_digest(self, reference: str) -> str:
        """The manifest digest (``sha256:<hex>``) a tag reference points at, asked of the registry.

        Raises ``NotFoundError`` or ``RuntimeFailure`` as ``ensure`` does.
        """
        name, _ = split_reference(reference)
        raw = self._skopeo(
            ["inspect", "--raw", *self._tls_flags(name, "--tls-verify"), f"docker://{name}"],
            what=f"resolve {reference}",
        )
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def remove(self, digest: str) -> None:
        """Forget an unpacked image (its rootfs and config). Idempotent.

        Blobs stay in the shared layout. The caller must make sure no container uses it.
        """
        hex_digest = digest.removeprefix("sha256:")
        with locked(digest_lock_path(self.cache_dir, hex_digest)):
            trash = discard_rootfs(self.cache_dir, hex_digest)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)  # else the next collect removes it

    def collect(self, in_use: Iterable[str], policy: GcPolicy | None = None) -> list[ImageDeletion]:
        """Delete the cached images ``choose_images_to_delete`` picks; return them, least
        recently used first, with their sizes and reasons.

        ``in_use``: the images this host needs — of its containers and of the machines
        assigned to it — as ``sha256:<hex>`` digests or digest references. A tag
        reference names no digest and is ignored (``ensure`` resolves a tag again
        anyway). An image a mounted overlay uses is kept whatever ``in_use`` says.
        Also removes the leftovers of an interrupted collect or unpack, and the
        layout's blobs that no remaining image references.

        Blocking; thread- and process-safe: one collect runs at a time; an image being
        ensured right now, or ensured after the decision, is kept; an ``ensure`` of a
        deleted digest pulls it again. Crash-safe (see ``image_cache_gc``). Raises
        ``RuntimeFailure`` before deleting anything if the host's mounts cannot be read.
        """
        hexes = (h for ref in in_use if (h := digest_hex(ref)))  # iterated under the GC lock
        return self._collector.collect(hexes, policy or GcPolicy())

    # -- steps ----------------------------------------------------------------

    def _cached(self, hex_digest: str) -> LocalImage | None:
        rootfs = self.cache_dir / "rootfs" / hex_digest
        try:
            stored = json.loads((self.cache_dir / "configs" / f"{hex_digest}.json").read_text())
        except FileNotFoundError:
            return None
        if not rootfs.is_dir():
            return None
        config = ImageConfig(
            entrypoint=tuple(stored["entrypoint"]),
            cmd=tuple(stored["cmd"]),
            env=tuple(stored["env"]),
            working_dir=stored["working_dir"],
            user=stored["user"],
        )
        return LocalImage(digest=f"sha256:{hex_digest}", rootfs=rootfs, config=config)

    def _manifest_descriptor(self, hex_digest: str) -> dict[str, Any] | None:
        try:
            index = json.loads((self.layout / "index.json").read_text())
        except FileNotFoundError:
            return None
        for descriptor in index.get("manifests", []):
            annotations = descriptor.get("annotations") or {}
            if annotations.get("org.opencontainers.image.ref.name") == hex_digest:
                return dict(descriptor)
        return None

    def _in_layout(self, hex_digest: str) -> bool:
        with locked(layout_lock_path(self.cache_dir), shared=True):
            return self._manifest_descriptor(hex_digest) is not None

    def _pull(self, name: str, digest: str) -> None:
        hex_digest = digest.removeprefix("sha256:")
        source = f"docker://{name}@{digest}"
        tls = self._tls_flags(name, "--src-tls-verify")
        # skopeo rewrites index.json: one writer at a time in the shared layout
        with locked(layout_lock_path(self.cache_dir)):
            self._skopeo(
                [
                    "copy",
                    "--quiet",
                    "--preserve-digests",
                    *tls,
                    source,
                    f"oci:{self.layout}:{hex_digest}",
                ],
                what=f"pull {name}@{digest}",
            )
            descriptor = self._manifest_descriptor(hex_digest)
        if descriptor is None or descriptor.get("digest") != digest:
            got = descriptor.get("digest") if descriptor else "nothing"
            raise RuntimeFailure(
                f"pulled {name}@{digest} but the stored manifest is {got}",
                hint="the registry served a different manifest; check the image reference",
            )
        if descriptor.get("mediaType") != OCI_MANIFEST:
            # --preserve-digests kept a Docker v2 manifest (so its digest is checkable), but
            # umoci unpacks only OCI manifests: add a converted one; layer blobs are reused.
            with locked(layout_lock_path(self.cache_dir)):
                self._skopeo(
                    [
                        "copy",
                        "--quiet",
                        "--format=oci",
                        *tls,
                        source,
                        f"oci:{self.layout}:{hex_digest}-oci",
                    ],
                    what=f"convert {name}@{digest} to an OCI manifest",
                )

    def _unpack(self, hex_digest: str) -> LocalImage:
        rootfs_dir = self.cache_dir / "rootfs"
        final = rootfs_dir / hex_digest
        staging = rootfs_dir / f"{STAGING_PREFIX}{hex_digest}"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash; we hold the digest lock
        unpack_tag = self._oci_format_tag(hex_digest)
        with locked(layout_lock_path(self.cache_dir), shared=True):
            config = self._read_image_config(hex_digest)
            self._run(
                ["umoci", "raw", "unpack", "--image", f"{self.layout}:{unpack_tag}", str(staging)],
                what=f"unpack sha256:{hex_digest}",
            )
        config_path = self.cache_dir / "configs" / f"{hex_digest}.json"
        temporary = config_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(config)))
        os.replace(temporary, config_path)
        if final.exists():  # a rootfs without config: an earlier crash between the renames
            shutil.rmtree(final)
        staging.rename(final)
        return LocalImage(digest=f"sha256:{hex_digest}", rootfs=final, config=config)

    def _oci_format_tag(self, hex_digest: str) -> str:
        """The layout tag umoci can unpack for this digest (see ``_pull``)."""
        descriptor = self._manifest_descriptor(hex_digest)
        if descriptor is None or descriptor.get("mediaType") == OCI_MANIFEST:
            return hex_digest
        return f"{hex_digest}-oci"

    def _read_image_config(self, hex_digest: str) -> ImageConfig:
        descriptor = self._manifest_descriptor(hex_digest)
        if descriptor is None:
            raise RuntimeFailure(f"image sha256:{hex_digest} vanished from the cache layout")
        manifest = json.loads(blob_path(self.layout, descriptor["digest"]).read_text())
        config_blob = json.loads(blob_path(self.layout, manifest["config"]["digest"]).read_text())
        return image_config_from_oci(config_blob)

    # -- tools ------------------------------------------------------------------

    def _tls_flags(self, name: str, flag: str) -> list[str]:
        registry = name.split("/", 1)[0]
        return [f"{flag}=false"] if registry in self.insecure_registries else []

    def _skopeo(self, args: list[str], *, what: str) -> bytes:
        return self._run(["skopeo", *args], what=what)

    def _run(self, argv: list[str], *, what: str) -> bytes:
        try:
            done = subprocess.run(argv, capture_output=True, timeout=_TOOL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"could not {what}: {exc}") from exc
        if done.returncode == 0:
            return done.stdout
        stderr = done.stderr.decode(errors="replace").strip()
        tail = stderr[-1500:] or "no output"
        if argv[0] == "skopeo" and any(m in stderr.lower() for m in _NOT_FOUND_MARKERS):
            raise NotFoundError(
                f"could not {what}: image not found in the registry",
                hint="push the image first, or check the repository name and digest",
            )
        if "connection refused" in stderr.lower() or "no such host" in stderr.lower():
            raise RuntimeFailure(
                f"could not {what}: the registry is unreachable ({tail})",
                hint="is the registry running, and is its address right?",
            )
        raise RuntimeFailure(f"could not {what}: {tail}")
