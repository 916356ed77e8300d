"""Which release `ferry releases rollback [VERSION]` deploys again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ferry.deploy.rollback import choose_rollback
from ferry.errors import NotFoundError, ValidationError
from ferry.model import MachineConfig
from ferry.model.release import Release, ReleaseStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def release(version: int, status: ReleaseStatus, *, config: bool = True) -> Release:
    image = f"reg/web@sha256:{version:064d}"
    return Release(
        app_name="web",
        version=version,
        image=image,
        status=status,
        strategy="rolling",
        user="admin",
        created_at=T0,
        updated_at=T0,
        config=MachineConfig(image=image) if config else None,
    )


HISTORY = [release(1, "complete"), release(2, "failed"), release(3, "complete")]


def test_without_a_version_the_previous_complete_release_is_chosen() -> None:
    assert choose_rollback("web", HISTORY, None).version == 1
    assert choose_rollback("web", [*HISTORY, release(4, "failed")], None).version == 3


def test_a_named_version_is_chosen_even_the_current_one() -> None:
    assert choose_rollback("web", HISTORY, 2).version == 2
    assert choose_rollback("web", HISTORY, 3).version == 3


def test_a_version_the_app_does_not_have_is_not_found_listing_what_it_has() -> None:
    with pytest.raises(NotFoundError, match=r"has no release v9 \(its releases: v3, v2, v1\)"):
        choose_rollback("web", HISTORY, 9)


def test_nothing_earlier_to_go_back_to_is_refused() -> None:
    with pytest.raises(ValidationError, match="no earlier complete release"):
        choose_rollback("web", [release(1, "complete"), release(2, "failed")][1:], None)
    with pytest.raises(ValidationError, match="no earlier complete release"):
        choose_rollback("web", [], None)


def test_a_running_release_or_one_without_config_is_refused() -> None:
    with pytest.raises(ValidationError, match="still being deployed"):
        choose_rollback("web", [release(1, "running")], 1)
    with pytest.raises(ValidationError, match="no recorded machine config") as info:
        choose_rollback("web", [release(1, "complete", config=False)], 1)
    assert info.value.hint and "ferry deploy --image" in info.value.hint
