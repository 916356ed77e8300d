"""The calls about an app's releases (Ferry-only; docs/api.md "Releases")."""

from __future__ import annotations

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.model.release import NewRelease, Release, ReleaseStatus


class ReleaseMethods(HttpCore):
    """Release endpoints. Every method blocks; errors as in ``HttpCore`` (404 for an
    unknown app or version, 409 for finishing a finished release)."""

    def _releases(self, app: str) -> str:
        return f"/v1/apps/{_seg(app)}/releases"

    def create_release(self, app: str, new: NewRelease) -> Release:
        """Record a ``running`` release; the answer carries its version."""
        body = new.model_dump(mode="json", exclude_none=True)
        return parse_model(Release, self._request("POST", self._releases(app), body=body))

    def finish_release(self, app: str, version: int, status: ReleaseStatus) -> Release:
        """Mark a running release ``complete`` or ``failed``."""
        path = f"{self._releases(app)}/{version}"
        return parse_model(Release, self._request("PATCH", path, body={"status": status}))

    def list_releases(self, app: str, *, limit: int = 100) -> list[Release]:
        """The app's releases, newest first."""
        data = self._request("GET", self._releases(app), params={"limit": limit})
        return parse_models(Release, data)

    def get_release(self, app: str, version: int) -> Release:
        return parse_model(Release, self._request("GET", f"{self._releases(app)}/{version}"))
