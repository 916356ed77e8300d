"""Volumes (``ferry volumes``, Fly's Volumes resource) and what a host's agent reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from ferry.client._agent import MAX_WATCH_SECONDS, WATCH_SLACK
from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model.volume import ExtendVolumeResponse, HostVolumes, Volume, VolumeSnapshot


class VolumeMethods(HttpCore):
    """Volume endpoints. Every method blocks; errors as in ``HttpCore``."""

    def create_volume(self, app_name: str, body: dict[str, Any]) -> Volume:
        """A new volume; ``body`` in Fly's shape (``name``, ``region``, ``size_gb`` …)."""
        data = self._request("POST", f"/v1/apps/{_seg(app_name)}/volumes", body=body)
        return parse_model(Volume, data)

    def list_volumes(self, app_name: str) -> list[Volume]:
        return parse_models(Volume, self._request("GET", f"/v1/apps/{_seg(app_name)}/volumes"))

    def get_volume(self, app_name: str, volume_id: str) -> Volume:
        path = f"/v1/apps/{_seg(app_name)}/volumes/{_seg(volume_id)}"
        return parse_model(Volume, self._request("GET", path))

    def extend_volume(self, app_name: str, volume_id: str, size_gb: int) -> ExtendVolumeResponse:
        path = f"/v1/apps/{_seg(app_name)}/volumes/{_seg(volume_id)}/extend"
        data = self._request("PUT", path, body={"size_gb": size_gb})
        return parse_model(ExtendVolumeResponse, data)

    def destroy_volume(self, app_name: str, volume_id: str) -> Volume:
        path = f"/v1/apps/{_seg(app_name)}/volumes/{_seg(volume_id)}"
        return parse_model(Volume, self._request("DELETE", path))

    def list_volume_snapshots(self, app_name: str, volume_id: str) -> list[VolumeSnapshot]:
        path = f"/v1/apps/{_seg(app_name)}/volumes/{_seg(volume_id)}/snapshots"
        return parse_models(VolumeSnapshot, self._request("GET", path))

    def create_volume_snapshot(self, app_name: str, volume_id: str) -> VolumeSnapshot:
        path = f"/v1/apps/{_seg(app_name)}/volumes/{_seg(volume_id)}/snapshots"
        return parse_model(VolumeSnapshot, self._request("POST", path))

    def host_volumes(self, host_id: str, since: int = 0, timeout: float = 0) -> HostVolumes:
        """(Agents) The host's volumes and snapshots to keep. With ``since`` (a view's
        ``version``) a long poll: the server answers when the view changes or after
        ``timeout`` seconds (capped at 60); the HTTP timeout allows for that."""
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            f"/v1/hosts/{_seg(host_id)}/volumes",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        return parse_model(HostVolumes, data)

    def send_snapshot(self, host_id: str, snapshot_id: str, frames: Iterable[bytes]) -> None:
        """(Agents) Stream a snapshot's frames to the control plane for a fork elsewhere."""
        path = f"/v1/hosts/{_seg(host_id)}/snapshots/{_seg(snapshot_id)}/export"
        try:
            response = self._http.request("PUT", path, content=iter(frames), timeout=600)
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot send snapshot {snapshot_id}: {exc}") from exc
        if not response.is_success:
            raise self._api_error(response)

    def fetch_snapshot(self, host_id: str, snapshot_id: str) -> Iterator[bytes]:
        """(Agents) The frames of a snapshot a fork on this host needs, as they arrive."""
        path = f"/v1/hosts/{_seg(host_id)}/snapshots/{_seg(snapshot_id)}/import"
        try:
            with self._http.stream("GET", path, timeout=600) as response:
                if not response.is_success:
                    response.read()
                    raise self._api_error(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot fetch snapshot {snapshot_id}: {exc}") from exc

    def report_volumes(self, host_id: str, report: dict[str, Any]) -> None:
        """(Agents) Capacity, volume states and figures, snapshot statuses."""
        self._request("POST", f"/v1/hosts/{_seg(host_id)}/volumes/report", body=report)
