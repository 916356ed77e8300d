"""The calls for WAF events (Ferry-only; docs/waf.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ferry.client._http import HttpCore
from ferry.client._parse import parse_models
from ferry.client._parse import path_segment as _seg
from ferry.model.machine_waf import WafEvent


class WafMethods(HttpCore):
    """WAF endpoints. Every method blocks; errors as in ``HttpCore``."""

    def report_waf_events(self, region: str, events: list[WafEvent]) -> int:
        """(Edges) Send a batch of events; returns how many the control plane stored."""
        body = {"events": [e.model_dump(mode="json") for e in events]}
        data = self._request("POST", f"/v1/edges/{_seg(region)}/waf-events", body=body)
        return int(data.get("stored", 0)) if isinstance(data, dict) else 0

    def waf_events(
        self, app: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[WafEvent]:
        """The app's newest ``limit`` events at or after ``since``, oldest first."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since.isoformat()
        return parse_models(
            WafEvent, self._request("GET", f"/v1/apps/{_seg(app)}/waf/events", params=params)
        )
