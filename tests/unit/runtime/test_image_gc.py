"""The image cache GC's pure decision: what a host may delete, and why."""

from __future__ import annotations

import pytest

from ferry.runtime.image_gc import (
    CachedImage,
    GcPolicy,
    choose_images_to_delete,
    overlay_lower_dirs,
)
from ferry.runtime.images import digest_hex

NOW = 1_800_000_000.0
HOUR = 3600.0
MB = 1_000_000


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def image(n: int, *, hours_ago: float, size: int = 100 * MB) -> CachedImage:
    return CachedImage(digest(n), size, NOW - hours_ago * HOUR)


def deleted(
    images: list[CachedImage], in_use: set[str] | None = None, **policy: float | int | None
) -> list[str]:
    chosen = choose_images_to_delete(images, in_use or set(), NOW, GcPolicy(**policy))  # type: ignore[arg-type]
    return [d.digest for d in chosen]


def test_images_beyond_the_rollback_set_are_deleted_least_recently_used_first() -> None:
    images = [image(n, hours_ago=n) for n in range(1, 7)]

    assert deleted(images, keep_unused=3) == [digest(6), digest(5), digest(4)]


def test_an_image_in_use_is_never_deleted_however_old() -> None:
    images = [image(1, hours_ago=1000), image(2, hours_ago=2000)]

    assert deleted(images, {digest(1), digest(2)}, keep_unused=0) == []


def test_images_in_use_do_not_take_rollback_slots() -> None:
    images = [image(1, hours_ago=1), image(2, hours_ago=2), image(3, hours_ago=3)]

    assert deleted(images, {digest(1)}, keep_unused=1) == [digest(3)]


def test_an_image_used_within_the_grace_period_is_kept_even_beyond_the_rollback_set() -> None:
    images = [image(1, hours_ago=0.05), image(2, hours_ago=0.5), image(3, hours_ago=5)]

    assert deleted(images, keep_unused=0, grace_seconds=600) == [digest(3), digest(2)]
    assert deleted(images, keep_unused=0, grace_seconds=HOUR) == [digest(3)]


def test_an_image_used_in_the_future_counts_as_just_used() -> None:
    assert deleted([image(1, hours_ago=-5)], keep_unused=0) == []


def test_over_budget_the_rollback_set_shrinks_oldest_first_until_the_cache_fits() -> None:
    images = [image(n, hours_ago=n, size=100 * MB) for n in range(1, 5)]
    # 400 MB cached; image 4 goes by count (keep 3), then 2 and 3 for a 150 MB budget
    chosen = choose_images_to_delete(
        images, set(), NOW, GcPolicy(keep_unused=3, max_total_bytes=150 * MB)
    )

    assert [d.digest for d in chosen] == [digest(4), digest(3), digest(2)]
    assert "over its budget of 150000000" in chosen[1].reason
    assert "not among the 3 most recently used unused images" in chosen[0].reason


def test_the_budget_never_deletes_images_in_use_or_within_grace() -> None:
    images = [image(1, hours_ago=0), image(2, hours_ago=100, size=10_000 * MB)]

    assert deleted(images, {digest(2)}, keep_unused=3, max_total_bytes=0) == []


def test_within_budget_the_rollback_set_is_kept() -> None:
    images = [image(1, hours_ago=10), image(2, hours_ago=20)]

    assert deleted(images, keep_unused=3, max_total_bytes=10_000 * MB) == []


def test_each_deletion_says_how_long_the_image_was_unused() -> None:
    (deletion,) = choose_images_to_delete(
        [image(1, hours_ago=72, size=42)], set(), NOW, GcPolicy(keep_unused=0)
    )

    assert deletion.size_bytes == 42
    assert deletion.reason == (
        "unused for 3 days and not among the 0 most recently used unused images"
    )


def test_ties_in_last_use_are_broken_by_digest() -> None:
    images = [image(2, hours_ago=5), image(1, hours_ago=5), image(3, hours_ago=5)]

    assert deleted(images, keep_unused=1) == [digest(2), digest(3)]


@pytest.mark.parametrize(
    "policy",
    [{"grace_seconds": -1}, {"keep_unused": -1}, {"max_total_bytes": -1}],
)
def test_negative_policy_values_are_rejected(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GcPolicy(**policy)  # type: ignore[arg-type]


MOUNTINFO = (
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
    "812 22 0:61 / /var/lib/ferry/runtime/containers/m1-i1/rootfs rw,relatime - overlay "
    "overlay rw,lowerdir=/var/lib/ferry/images/rootfs/aaaa,upperdir=/u,workdir=/w\n"
    "813 22 0:62 / /x rw - overlay overlay rw,lowerdir=/srv/my\\040cache/bbbb:/lower/two,"
    "upperdir=/u2,workdir=/w2\n"
    "814 22 0:63 / /y rw - tmpfs tmpfs rw,lowerdir=/not/an/overlay\n"
)


def test_overlay_lower_dirs_come_from_overlay_mounts_only_and_are_unescaped() -> None:
    assert overlay_lower_dirs(MOUNTINFO) == {
        "/var/lib/ferry/images/rootfs/aaaa",
        "/srv/my cache/bbbb",
        "/lower/two",
    }


def test_digest_hex_accepts_digests_and_digest_references_only() -> None:
    hex_digest = "ab" * 32

    assert digest_hex(f"sha256:{hex_digest}") == hex_digest
    assert digest_hex(f"reg:5000/app:v1@sha256:{hex_digest}") == hex_digest
    assert digest_hex("reg:5000/app:v1") is None
    assert digest_hex("sha256:abc") is None
    assert digest_hex("reg/app@sha256:abc") is None
