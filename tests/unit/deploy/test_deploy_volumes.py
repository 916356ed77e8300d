"""A deploy gives each machine its ``[[mounts]]`` volume the way ``fly deploy`` does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ferry.config.loader import parse_app_config
from ferry.deploy.plan import DeployStep
from ferry.deploy.volumes import DeployVolumes
from ferry.errors import ValidationError
from ferry.model import MachineConfig
from ferry.model.volume import Volume, VolumeState

from .deploy_fakes import make_machine

IMAGE = "reg/web@sha256:" + "0" * 64
TOML = '[[mounts]]\nsource = "data"\ndestination = "/data"\ninitial_size = "3gb"\n'
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Volumes:
    """The two volume calls of the API, over a list."""

    def __init__(self, *existing: Volume) -> None:
        self.volumes = list(existing)
        self.created: list[dict[str, Any]] = []

    def list_volumes(self, app_name: str) -> list[Volume]:
        return list(self.volumes)

    def create_volume(self, app_name: str, body: dict[str, Any]) -> Volume:
        self.created.append(body)
        made = volume(f"vol_new{len(self.created)}", body["region"], size_gb=body["size_gb"])
        self.volumes.append(made)
        return made


def volume(volume_id: str, region: str = "ams", **fields: Any) -> Volume:
    base: dict[str, Any] = {
        "id": volume_id,
        "name": "data",
        "app_name": "web",
        "state": VolumeState.CREATED,
        "size_gb": 1,
        "region": region,
        "zone": "h1",
        "host_id": "h1",
        "created_at": NOW,
    }
    return Volume.model_validate({**base, **fields})


def test_new_machines_take_free_volumes_of_their_region_then_new_ones() -> None:
    api = Volumes(volume("vol_free"), volume("vol_busy", attached_machine_id="m1"))
    deploy = DeployVolumes(api, "web", parse_app_config(TOML), [])

    first = deploy.mounts(DeployStep("create", "ams"))
    second = deploy.mounts(DeployStep("create", "ams"))

    assert [(m.volume, m.path, m.name) for m in first] == [("vol_free", "/data", "data")]
    assert second[0].volume == "vol_new1"
    assert api.created == [{"name": "data", "region": "ams", "size_gb": 3, "snapshot_retention": 5}]


def test_an_updated_machine_keeps_its_volume_and_one_without_cannot_gain_one() -> None:
    mounted = MachineConfig.model_validate(
        {"image": IMAGE, "mounts": [{"volume": "vol_mine", "path": "/old"}]}
    )
    machines = [make_machine("m1", config=mounted), make_machine("m2")]
    deploy = DeployVolumes(Volumes(), "web", parse_app_config(TOML), machines)

    kept = deploy.mounts(DeployStep("update", "ams", machine_id="m1"))

    assert [(m.volume, m.path) for m in kept] == [("vol_mine", "/data")]
    with pytest.raises(ValidationError, match="cannot gain one"):
        deploy.mounts(DeployStep("update", "ams", machine_id="m2"))
    no_mounts = DeployVolumes(Volumes(), "web", parse_app_config(""), machines)
    with pytest.raises(ValidationError, match="no \\[\\[mounts\\]\\]"):
        no_mounts.mounts(DeployStep("update", "ams", machine_id="m1"))
