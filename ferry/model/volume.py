"""Volumes in the Fly Machines API shape: the volume, its snapshots, the requests, a mount.

A volume is an ext4 filesystem with a hard size limit that lives on one host
(``host_id``, Ferry-only) and is mounted into the one machine that claims it
(``attached_machine_id``). Field names follow Fly's Volumes resource, so a
request written for Fly works here; every create field Fly documents is
honoured or refused by name (``VOLUME_CREATE_REFUSED``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ferry.model.refusals import FlyConfigModel

__all__ = [
    "MAX_VOLUME_GB",
    "VOLUME_CREATE_REFUSED",
    "CreateVolumeRequest",
    "ExtendVolumeRequest",
    "ExtendVolumeResponse",
    "HostVolumeReport",
    "HostVolumes",
    "MachineMount",
    "SnapshotReportEntry",
    "SnapshotStatus",
    "UpdateVolumeRequest",
    "Volume",
    "VolumeReportEntry",
    "VolumeSnapshot",
    "VolumeState",
    "mount_path_problem",
    "volume_name_problem",
]

#: A sanity bound (Fly's is 500 GB): the host's free space is the real limit.
MAX_VOLUME_GB = 500

_NAME = re.compile(r"^[a-z0-9_]{1,30}$")

#: Paths a volume may not cover: the machine's system directories and Ferry's own.
_RESERVED_PATHS = ("/", "/proc", "/sys", "/dev", "/etc", "/bin", "/sbin", "/lib", "/usr", "/.ferry")

VOLUME_CREATE_REFUSED: Mapping[str, str] = {
    "host_dedication_id": "dedicated hosts are not supported",
    "compute_image": "placement by image is not supported; the volume's host is chosen by room",
    "unique_zone_app_wide": "zones are not modelled: a host is its own zone",
}


def volume_name_problem(name: str) -> str | None:
    """Why ``name`` is not a volume name (Fly's rule: lower-case letters, digits and
    ``_``, at most 30), or ``None``."""
    if _NAME.match(name):
        return None
    return "must be 1-30 lower-case letters, digits or '_' (Fly's rule for volume names)"


def mount_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be where a volume is mounted in a machine, or ``None``."""
    if not path.startswith("/"):
        return f"mount path {path!r} must be absolute (start with '/')"
    clean = posixpath.normpath(path)
    if clean != path.rstrip("/") and not (path == "/" and clean == "/"):
        return f"mount path {path!r} must be normalized (no '..', '.', or '//'): use {clean!r}"
    for reserved in _RESERVED_PATHS:
        if clean == reserved or (reserved != "/" and clean.startswith(reserved + "/")):
            return f"mount path {path!r} would cover the machine's {reserved}: choose e.g. /data"
    return None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class VolumeState(StrEnum):
    """Fly's volume states (the ones Ferry reaches)."""

    CREATING = "creating"  # the host's agent has not made the filesystem yet
    RESTORING = "restoring"  # made from a snapshot: the agent copies it
    HYDRATING = "hydrating"  # a fork: the source's copy travels from its host
    CREATED = "created"
    EXTENDING = "extending"  # asked bigger; the agent grows the image and the filesystem
    PENDING_DESTROY = "pending_destroy"  # the owner asked; the agent removes the image
    DESTROYED = "destroyed"
    FAILED = "failed"  # the agent could not make it (``error`` says why, Ferry-only)


class Volume(_Frozen):
    """A volume as the API returns it.

    ``host_id``, ``error`` and ``revision`` are Ferry additions. ``zone`` is the
    host id (a host is its own failure zone). ``encrypted`` is always ``false``
    (see docs/volumes.md). ``blocks*`` and ``bytes_*`` are the filesystem's
    figures as the agent last reported them (0 before the first report).
    """

    id: str
    name: str
    app_name: str
    state: VolumeState
    size_gb: int
    region: str
    zone: str
    host_id: str
    encrypted: bool = False
    fstype: Literal["ext4"] = "ext4"
    attached_machine_id: str | None = None
    attached_alloc_id: str | None = None
    created_at: datetime
    snapshot_retention: int = 5
    auto_backup_enabled: bool = False
    host_dedication_id: str = ""
    host_status: Literal["ok", "unknown", "unreachable"] = "ok"
    block_size: int = 0
    blocks: int = 0
    blocks_free: int = 0
    blocks_avail: int = 0
    bytes_total: int = 0
    bytes_used: int = 0
    #: Ferry-only: the snapshot a restore (or a fork) copies.
    snapshot_id: str | None = None
    #: The volume a fork copies (Fly's ``source_volume_id``).
    source_volume_id: str | None = None
    error: str | None = None
    revision: int = 0


class SnapshotStatus(StrEnum):
    CREATING = "creating"
    CREATED = "created"
    FAILED = "failed"


class VolumeSnapshot(_Frozen):
    """One snapshot (Fly's ``GET …/snapshots`` item); ``volume_id`` is Ferry's addition."""

    id: str
    volume_id: str
    size: int = 0  # bytes the copy holds on its host
    digest: str = ""
    created_at: datetime
    status: SnapshotStatus = SnapshotStatus.CREATING
    retention_days: int = 5


class CreateVolumeRequest(FlyConfigModel):
    """Body of ``POST /v1/apps/{app}/volumes``; unknown or refused fields are named in a 400.

    ``compute`` (the guest of the machine that will use it) is accepted, but
    placement looks at disk room only: the machine's create says if its volume's
    host lacks the CPU or memory.
    ``require_unique_zone`` (Fly's default ``true``) puts it on a host that
    holds no other volume of the same name when the region has one.
    ``source_volume_id`` forks that volume: a consistent copy of it, in any
    region (``hydrating`` until the copy has reached its host).
    """

    name: str
    region: str | None = None
    size_gb: int = Field(default=1)
    encrypted: bool = False
    fstype: Literal["ext4"] | None = None
    snapshot_id: str | None = None
    source_volume_id: str | None = None
    snapshot_retention: int = Field(default=5, ge=1, le=60)
    auto_backup_enabled: bool = False
    require_unique_zone: bool = True
    compute: dict[str, object] | None = None

    refused_fields: ClassVar[Mapping[str, str]] = VOLUME_CREATE_REFUSED

    @field_validator("encrypted")
    @classmethod
    def _no_encryption(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "encrypted volumes are not supported yet by Ferry (the image is a plain ext4 "
                "file on the host's disk): send encrypted=false (`--no-encryption`)"
            )
        return value


class UpdateVolumeRequest(FlyConfigModel):
    """Body of ``PUT /v1/apps/{app}/volumes/{id}``."""

    snapshot_retention: int | None = Field(default=None, ge=1, le=60)
    auto_backup_enabled: bool | None = None


class ExtendVolumeRequest(FlyConfigModel):
    """Body of ``PUT /v1/apps/{app}/volumes/{id}/extend``."""

    size_gb: int


class ExtendVolumeResponse(_Frozen):
    """Fly's answer to an extend: the volume, and whether its machine must restart to
    see the new size (in use on a host that cannot grow a mounted filesystem)."""

    volume: Volume
    needs_restart: bool = False


class MachineMount(FlyConfigModel):
    """One entry of ``config.mounts``: the volume ``volume`` mounted at ``path``.

    ``name`` (Fly's: the volume's name) is carried for display. Auto-extend
    (``extend_threshold_percent``, ``add_size_gb``, ``size_gb_limit``) is refused.
    """

    volume: str = Field(min_length=1)
    path: str
    name: str | None = None
    size_gb: int | None = None
    encrypted: bool | None = None

    refused_fields: ClassVar[Mapping[str, str]] = {
        "extend_threshold_percent": "automatic extension is not built; use `ferry volumes extend`",
        "add_size_gb": "automatic extension is not built; use `ferry volumes extend`",
        "size_gb_limit": "automatic extension is not built; use `ferry volumes extend`",
    }

    @field_validator("path")
    @classmethod
    def _path_ok(cls, value: str) -> str:
        problem = mount_path_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/") or "/"


class HostVolumes(_Frozen):
    """What a host's agent keeps (``GET /v1/hosts/{id}/volumes``): its volumes that are
    not destroyed, the snapshots on it, and the copies it sends or fetches for forks.

    ``version`` fingerprints the rest (never 0): the agent long-polls with it as
    ``since`` and is answered when anything here changes."""

    version: int = 0
    volumes: list[Volume] = Field(default_factory=list)
    snapshots: list[VolumeSnapshot] = Field(default_factory=list)
    #: Snapshots on this host a fork elsewhere waits for: send each to the control plane.
    exports: list[str] = Field(default_factory=list)
    #: Snapshots a fork on this host needs that the control plane holds: fetch each.
    imports: list[str] = Field(default_factory=list)


class VolumeReportEntry(_Frozen):
    """One volume in a host's report (``state``: ready, failed or destroyed; none: no news)."""

    id: str
    state: Literal["ready", "failed", "destroyed"] | None = None
    size_gb: int = Field(default=0, ge=0)
    error: str | None = Field(default=None, max_length=2000)
    block_size: int | None = Field(default=None, ge=0)
    blocks: int | None = Field(default=None, ge=0)
    blocks_free: int | None = Field(default=None, ge=0)
    blocks_avail: int | None = Field(default=None, ge=0)
    bytes_total: int | None = Field(default=None, ge=0)
    bytes_used: int | None = Field(default=None, ge=0)


class SnapshotReportEntry(_Frozen):
    id: str
    status: SnapshotStatus
    size: int = Field(default=0, ge=0)
    digest: str = ""


class HostVolumeReport(_Frozen):
    """Body of ``POST /v1/hosts/{id}/volumes/report``."""

    capacity_bytes: int | None = Field(default=None, ge=0)
    online_resize: bool = False
    volumes: list[VolumeReportEntry] = Field(default_factory=list, max_length=10000)
    snapshots: list[SnapshotReportEntry] = Field(default_factory=list, max_length=10000)
