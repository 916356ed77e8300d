"""Write images into an OCI image layout directory, without Docker or umoci.

A layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) is what skopeo
copies into the cluster's registry (``oci:DIR:TAG``). Layers are gzip'd tars
added with ``add_tar_layer`` (a tar file on disk) or ``add_files_layer``
(files in memory, written reproducibly: same files, same digest).
Blocking file I/O; every blob is written to a temporary name and renamed, so
a crash leaves no half-written blob under its digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Layer",
    "add_files_layer",
    "add_tar_layer",
    "blob_path",
    "init_layout",
    "prune_blobs",
    "read_tags",
    "write_image",
]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A layer blob: ``digest``/``size`` of the gzip'd bytes, ``diff_id`` of the tar."""

    digest: str
    diff_id: str
    size: int


def init_layout(layout: Path) -> None:
    """Make ``layout`` an (empty) OCI layout if it is not one. Idempotent."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    marker = layout / "oci-layout"
    if not marker.exists():
        marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    if not (layout / "index.json").exists():
        _write_index(layout, [])


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _store_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    target = blob_path(layout, digest)
    if not target.exists():
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, target)
    return digest, len(data)


class _HashingWriter(io.RawIOBase):
    """A sink that hashes and counts what gzip writes, and passes it on to a file."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha.update(chunk)
        self.size += len(chunk)
        self.out.write(chunk)
        return len(chunk)


def add_tar_layer(layout: Path, tar_path: Path) -> Layer:
    """Compress the tar at ``tar_path`` into a layer blob of ``layout``; streams, any size."""
    partial = layout / "blobs" / "sha256" / f"{tar_path.name}.partial"
    diff = hashlib.sha256()
    with partial.open("wb") as raw:
        sink = _HashingWriter(raw)
        with (
            gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz,
            tar_path.open("rb") as src,
        ):
            while chunk := src.read(CHUNK):
                diff.update(chunk)
                gz.write(chunk)
    digest = "sha256:" + sink.sha.hexdigest()
    os.replace(partial, blob_path(layout, digest))
    return Layer(digest=digest, diff_id="sha256:" + diff.hexdigest(), size=sink.size)


def add_files_layer(layout: Path, files: dict[str, tuple[bytes, int]]) -> Layer:
    """A layer of ``files`` (path → (bytes, mode)), owned by root, with fixed times.

    Parent directories get entries of their own (mode 0755) so the layer unpacks
    onto any base.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(p) for path in files for p in Path(path).parents} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path in sorted(files):
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = buffer.getvalue()
    digest, size = _store_blob(layout, gzip.compress(tar_bytes, mtime=0))
    return Layer(
        digest=digest, diff_id="sha256:" + hashlib.sha256(tar_bytes).hexdigest(), size=size
    )


def write_image(layout: Path, tag: str, layers: list[Layer], config: dict[str, Any]) -> str:
    """Write config and manifest; make ``tag`` the layout's only image. Returns the manifest
    digest (what the registry will name the image by)."""
    config_digest, config_size = _store_blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": LAYER_TYPE, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    digest, size = _store_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    entry = {
        "mediaType": MANIFEST_TYPE,
        "digest": digest,
        "size": size,
        "annotations": {REF_NAME: tag},
    }
    _write_index(layout, [entry])
    return digest


def read_tags(layout: Path) -> dict[str, str]:
    """Tag → manifest digest of the images in ``layout`` whose blobs are all present."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    tags: dict[str, str] = {}
    for entry in index.get("manifests", []):
        tag = entry.get("annotations", {}).get(REF_NAME)
        digest = entry.get("digest", "")
        if tag and _complete(layout, digest):
            tags[tag] = digest
    return tags


def _complete(layout: Path, manifest_digest: str) -> bool:
    try:
        manifest = json.loads(blob_path(layout, manifest_digest).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    needed = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    return all(blob_path(layout, digest).is_file() for digest in needed)


def prune_blobs(layout: Path, keep: set[str]) -> int:
    """Delete blobs that neither the index's images nor ``keep`` use; return how many."""
    used = set(keep)
    for digest in read_tags(layout).values():
        manifest = json.loads(blob_path(layout, digest).read_text())
        used |= {digest, manifest["config"]["digest"]}
        used |= {layer["digest"] for layer in manifest["layers"]}
    removed = 0
    for blob in (layout / "blobs" / "sha256").iterdir():
        if f"sha256:{blob.name}" not in used:
            blob.unlink()
            removed += 1
    return removed


def _write_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    partial = layout / "index.json.partial"
    partial.write_text(json.dumps({**index, "manifests": manifests}, indent=1))
    os.replace(partial, layout / "index.json")
