"""The calls that read the audit trail (Ferry-only; docs/audit.md)."""

from __future__ import annotations

from typing import Any

from ferry.client._http import HttpCore
from ferry.client._parse import parse_models
from ferry.client._parse import path_segment as _seg
from ferry.model.audit import AuditRecord


class AuditMethods(HttpCore):
    """Audit endpoints. Every method blocks; errors as in ``HttpCore`` (404 for an
    organization the token may not see, 403 for a member who is not an admin)."""

    def list_audit(
        self, org_slug: str | None, *, limit: int = 100, before: int | None = None
    ) -> list[AuditRecord]:
        """Records newest first: of ``org_slug``, or every record (``None``: the
        operator's view). ``before``: only records older than that id (next page)."""
        path = "/v1/audit" if org_slug is None else f"/v1/orgs/{_seg(org_slug)}/audit"
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return parse_models(AuditRecord, self._request("GET", path, params=params))
