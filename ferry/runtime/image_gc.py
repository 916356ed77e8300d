"""Which cached images a host may delete: the pure decision of the image cache's GC.

``choose_images_to_delete`` is a function of a snapshot: the images in the cache
(digest, size, last use), the digests in use on the host, the time and a
``GcPolicy``. An image is kept when

1. it is in use (a container's overlay lower, or the image of a machine assigned
   to the host: it may be started again at any moment);
2. it was used within ``grace_seconds`` (a start may be between pulling it and
   mounting it);
3. it is one of the ``keep_unused`` most recently used of the others, so a
   rollback starts without a pull — unless the cache is over ``max_total_bytes``,
   when these go too, least recently used first, until it fits.

Every other image is deleted. Each deletion carries a one-line reason that the
agent logs and tests assert. ``overlay_lower_dirs`` reads which directories
mounted overlays use as lower layers (from ``/proc/self/mountinfo`` text).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = [
    "CachedImage",
    "GcPolicy",
    "ImageDeletion",
    "choose_images_to_delete",
    "overlay_lower_dirs",
]


@dataclass(frozen=True)
class CachedImage:
    """One image in a host's cache, as the GC sees it."""

    digest: str  # "sha256:<hex>" of the manifest
    size_bytes: int  # what deleting it frees: its rootfs and the blobs no other image shares
    last_used: float  # wall-clock seconds (epoch) of the last ensure or in-use sighting


@dataclass(frozen=True)
class GcPolicy:
    """How much of the cache the GC keeps; see the module docstring for the rules.

    ``grace_seconds`` must exceed the time from ``ensure`` returning an image to a
    container mounting it: in between, only the recent use protects the image.
    """

    grace_seconds: float = 600.0
    keep_unused: int = 3
    max_total_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.grace_seconds < 0 or self.keep_unused < 0:
            raise ValueError("grace_seconds and keep_unused must not be negative")
        if self.max_total_bytes is not None and self.max_total_bytes < 0:
            raise ValueError("max_total_bytes must not be negative")


@dataclass(frozen=True)
class ImageDeletion:
    digest: str
    size_bytes: int
    reason: str


def choose_images_to_delete(
    images: Iterable[CachedImage],
    in_use: Collection[str],
    now: float,
    policy: GcPolicy,
) -> list[ImageDeletion]:
    """The images to delete, least recently used first. Pure; deterministic.

    ``in_use`` holds ``sha256:<hex>`` digests. An image used "in the future"
    (a clock step back) counts as just used.
    """
    cached = list(images)
    idle = sorted(
        (
            image
            for image in cached
            if image.digest not in in_use and now - image.last_used >= policy.grace_seconds
        ),
        key=lambda image: (-image.last_used, image.digest),
    )
    for_rollback, beyond = idle[: policy.keep_unused], idle[policy.keep_unused :]
    deletions = [
        ImageDeletion(
            image.digest,
            image.size_bytes,
            f"unused for {_age(now - image.last_used)} and not among the "
            f"{policy.keep_unused} most recently used unused images",
        )
        for image in reversed(beyond)
    ]
    if policy.max_total_bytes is not None:
        total = sum(image.size_bytes for image in cached) - sum(d.size_bytes for d in deletions)
        for image in reversed(for_rollback):
            if total <= policy.max_total_bytes:
                break
            deletions.append(
                ImageDeletion(
                    image.digest,
                    image.size_bytes,
                    f"unused for {_age(now - image.last_used)}; the cache holds {total} bytes, "
                    f"over its budget of {policy.max_total_bytes}",
                )
            )
            total -= image.size_bytes
    last_used = {image.digest: image.last_used for image in cached}
    return sorted(deletions, key=lambda d: (last_used[d.digest], d.digest))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def overlay_lower_dirs(mountinfo: str) -> set[str]:
    """Every lower directory of the overlay mounts in ``/proc/<pid>/mountinfo`` text. Pure.

    Octal escapes (``\\040`` for a space) are decoded. A lower path holding a comma
    or a colon cannot be told apart from the option syntax and comes out split.
    """
    lowers: set[str] = set()
    for line in mountinfo.splitlines():
        _, separator, tail = line.partition(" - ")
        fields = tail.split()
        if not separator or len(fields) < 3 or fields[0] != "overlay":
            continue
        for option in fields[2].split(","):
            if option.startswith("lowerdir="):
                for lower in option.removeprefix("lowerdir=").split(":"):
                    if lower:  # "a::b" marks data-only lower layers
                        lowers.add(_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), lower))
    return lowers
