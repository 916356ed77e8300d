"""Which earlier release a rollback deploys again (pure).

``ferry releases rollback [VERSION]`` deploys the image and machine config of
an earlier release as a new release. Without a version it picks the newest
``complete`` release older than the newest release (the one before the
current), as ``fly releases rollback`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from ferry.errors import NotFoundError, ValidationError
from ferry.model.release import Release

__all__ = ["choose_rollback"]


def choose_rollback(app: str, releases: Sequence[Release], version: int | None) -> Release:
    """The release to deploy again. ``releases`` in any order.

    Raises ``NotFoundError`` for a version the app does not have (listing the
    ones it has) and ``ValidationError`` for a release still running, one
    recorded without a config, or no earlier complete release to go back to.
    """
    newest_first = sorted(releases, key=lambda r: r.version, reverse=True)
    if version is None:
        earlier = [r for r in newest_first[1:] if r.status == "complete"]
        if not earlier:
            raise ValidationError(
                f"app {app!r} has no earlier complete release to roll back to",
                hint=f"see `ferry releases -a {app}`; name a version to deploy it again",
            )
        target = earlier[0]
    else:
        found = next((r for r in newest_first if r.version == version), None)
        if found is None:
            have = ", ".join(f"v{r.version}" for r in newest_first[:10]) or "none"
            raise NotFoundError(
                f"app {app!r} has no release v{version} (its releases: {have})",
                hint=f"see `ferry releases -a {app}`",
            )
        target = found
    if target.status == "running":
        raise ValidationError(
            f"release v{target.version} of {app!r} is still being deployed",
            hint="wait for it to finish, then roll back",
        )
    if target.config is None:
        raise ValidationError(
            f"release v{target.version} of {app!r} has no recorded machine config",
            hint=f"deploy its image with `ferry deploy --image {target.image}`",
        )
    return target
