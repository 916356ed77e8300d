"""An app's Flycast addresses (``ferry ips``; the Machines API's ``ip_assignments``) and
the feed the edges serve them from."""

from __future__ import annotations

from ferry.client._agent import MAX_WATCH_SECONDS, WATCH_SLACK
from ferry.client._http import HttpCore
from ferry.client._parse import parse_model
from ferry.client._parse import path_segment as _seg
from ferry.model.flycast import PRIVATE_V6, FlycastFeed, IPAssignment, IPAssignmentList


class FlycastMethods(HttpCore):
    """IP assignment endpoints. Every method blocks; errors as in ``HttpCore`` (400 for a
    type, org, network or region Ferry does not assign, 404 for an unknown app or address)."""

    def _ips(self, app: str) -> str:
        return f"/v1/apps/{_seg(app)}/ip_assignments"

    def list_ip_assignments(self, app: str) -> list[IPAssignment]:
        data = self._request("GET", self._ips(app))
        return parse_model(IPAssignmentList, data).ips

    def assign_ip(
        self, app: str, kind: str = PRIVATE_V6, *, org_slug: str = "", network: str = "",
        region: str = "",
    ) -> IPAssignment:  # fmt: skip
        """A new address of ``kind`` (Ferry assigns ``private_v6``: Flycast)."""
        body = {"type": kind, "org_slug": org_slug, "network": network, "region": region}
        return parse_model(IPAssignment, self._request("POST", self._ips(app), body=body))

    def release_ip(self, app: str, ip: str) -> IPAssignment:
        path = f"{self._ips(app)}/{_seg(ip)}"
        return parse_model(IPAssignment, self._request("DELETE", path))

    def watch_flycast(self, region: str, since: int = 0, timeout: float = 30) -> FlycastFeed:
        """(Edges) Every Flycast address once the feed moved past ``since`` (long poll)."""
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            f"/v1/edges/{_seg(region)}/flycast",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        return parse_model(FlycastFeed, data)
