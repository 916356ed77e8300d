"""Settings of an embedded cluster, kept in ``$FERRY_HOME/cluster.json``."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import ConfigError
from ferry.net.latency import LatencyMatrix
from ferry.net.plan import ClusterPlan, plan_cluster

DEFAULT_REGIONS = ("ams", "iad", "sin")


def default_home() -> Path:
    return Path(os.environ.get("FERRY_HOME", "/var/lib/ferry"))


class ClusterSettings(BaseModel):
    """What ``ferry cluster up`` was asked for; enough to rebuild every name and address."""

    model_config = ConfigDict(frozen=True)

    home: Path
    regions: tuple[str, ...] = DEFAULT_REGIONS
    hosts_per_region: int = Field(default=1, ge=1, le=14)
    host_cpus: int = Field(default=8, ge=1)
    host_memory_mb: int = Field(default=4096, ge=256)
    api_port: int = 4280
    registry_port: int = 5000
    prefix: str = Field(default_factory=lambda: f"fy{secrets.token_hex(2)}")
    octet: int = 77
    domain: str = "ferry.test"
    wan_rtt_ms: dict[str, float] = Field(default_factory=dict)  # "ams-xyz": 80 (extra pairs)
    wan_jitter: Literal["none", "spread"] | float = "none"  # "spread": from the P95 table
    readonly_root: bool = False  # machines' root filesystems read-only (docs/isolation.md)
    # Regions with a host that joins from outside the region's network (docs/networking.md)
    remote_hosts: tuple[str, ...] = ()

    @property
    def latency(self) -> LatencyMatrix:
        """The emulated WAN's round-trip times: the measured defaults plus overrides."""
        return LatencyMatrix.default(jitter=self.wan_jitter).with_overrides(self.wan_rtt_ms)

    @property
    def plan(self) -> ClusterPlan:
        return plan_cluster(
            self.prefix, self.octet, list(self.regions), self.hosts_per_region, self.remote_hosts
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def internal_api_url(self) -> str:
        """The API as the hosts reach it (the root end of the root<->core link)."""
        return f"http://{self.plan.root_address}:{self.api_port}"

    @property
    def registry_address(self) -> str:
        return f"{self.plan.root_address}:{self.registry_port}"

    @property
    def token_path(self) -> Path:
        return self.home / "server" / "admin-token"

    def host_dir(self, host_id: str) -> Path:
        return self.home / "hosts" / host_id

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def settings_path(self) -> Path:
        return self.home / "cluster.json"

    @property
    def pid_path(self) -> Path:
        return self.home / "supervisor.pid"

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(self.settings_path)

    @classmethod
    def load(cls, home: Path) -> ClusterSettings:
        path = home / "cluster.json"
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(
                f"no embedded cluster in {home}", hint="start one with `ferry cluster up`"
            ) from None
        except (ValueError, OSError) as exc:
            raise ConfigError(
                f"{path} is unreadable: {exc}", hint="run `ferry cluster down`"
            ) from exc
