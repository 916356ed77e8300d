"""The calls hosts and edges make to join the WireGuard mesh (Ferry-only; docs/networking.md)."""

from __future__ import annotations

from ferry.client._agent import MAX_WATCH_SECONDS, WATCH_SLACK
from ferry.client._http import HttpCore
from ferry.client._parse import parse_model
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model.mesh import EdgeFastPlan, MeshNode, MeshSnapshot


class MeshMethods(HttpCore):
    """Mesh endpoints. Every method blocks; errors as in ``HttpCore``."""

    def announce_host_mesh(self, host_id: str, public_key: str, endpoint: str) -> MeshNode:
        """(Hosts) This host's public key and WireGuard endpoint; returns it as others see it."""
        body = {"public_key": public_key, "endpoint": endpoint}
        data = self._request("PUT", f"/v1/hosts/{_seg(host_id)}/mesh", body=body)
        return parse_model(MeshNode, data)

    def announce_edge_mesh(self, region: str, public_key: str, endpoint: str) -> MeshNode:
        """(Edges) This region edge's public key and WireGuard endpoint."""
        body = {"public_key": public_key, "endpoint": endpoint}
        data = self._request("PUT", f"/v1/edges/{_seg(region)}/mesh", body=body)
        return parse_model(MeshNode, data)

    def publish_flycast_fast(self, region: str, plan: EdgeFastPlan) -> EdgeFastPlan:
        """(Edges) The raw TCP Flycast ports this region edge forwards in its kernel now."""
        data = self._request(
            "PUT", f"/v1/edges/{_seg(region)}/flycast-fast", body=plan.model_dump(mode="json")
        )
        return parse_model(EdgeFastPlan, data)

    def watch_mesh(self, since: int = 0, timeout: float = 30) -> MeshSnapshot:
        """Every node once the mesh moved past ``since`` (long poll, as the host watch)."""
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            "/v1/mesh",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        return parse_model(MeshSnapshot, data)

    def watch_internal_records(
        self, host_id: str, since: int = 0, timeout: float = 30
    ) -> tuple[int, str]:
        """(Hosts) The ``.internal`` records for this host's resolver once machines moved
        past ``since``: ``(version, JSON text of InternalRecords)`` (long poll)."""
        return self._records(f"/v1/hosts/{_seg(host_id)}/internal", since, timeout)

    def watch_gateway_records(
        self, region: str, since: int = 0, timeout: float = 30
    ) -> tuple[int, str]:
        """(Edges) The records the region gateway's resolver answers its peers from."""
        return self._records(f"/v1/edges/{_seg(region)}/internal", since, timeout)

    def _records(self, path: str, since: int, timeout: float) -> tuple[int, str]:
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        response = self._exchange(
            "GET",
            path,
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        try:
            version = int(response.headers.get("Ferry-Version", ""))
        except ValueError:
            raise UnavailableError("the Ferry API sent records without Ferry-Version") from None
        return version, response.text
