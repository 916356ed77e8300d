"""Conversions between SQLite rows and the domain models, for ``ferry.store.sqlite``.

Pure functions: timestamps are stored as UTC epoch seconds (REAL), configs
and other nested values as JSON text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row

from ferry.model import (
    App,
    CheckStatus,
    Host,
    HostStatus,
    ImageRef,
    Machine,
    MachineConfig,
    MachineEvent,
    Organization,
)
from ferry.model.machine import StopOverride

__all__ = [
    "MUTABLE_FIELDS",
    "app_from_row",
    "dt",
    "encode_machine_changes",
    "equal_filters",
    "event_from_row",
    "event_values",
    "host_from_row",
    "host_values",
    "machine_from_row",
    "ts",
]

_CHECKS = TypeAdapter(list[CheckStatus])
MUTABLE_FIELDS = frozenset(
    {
        "state",
        "desired_state",
        "instance_id",
        "host_id",
        "host_ip",
        "private_ip",
        "config",
        "image_ref",
        "exit_code",
        "restart_count",
        "generation",
        "pending_signal",
        "stop_override",
        "cordoned",
        "checks",
        "updated_at",
    }
)


def ts(moment: datetime) -> float:
    return moment.timestamp()


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def equal_filters(select: str, **wanted: str | None) -> tuple[str, dict[str, str]]:
    """``select`` narrowed by ``column = value`` for each given (non-``None``) value,
    and the parameters to bind: ``equal_filters("SELECT * FROM t", app_name="web")`` is
    ``("SELECT * FROM t WHERE 1 = 1 AND app_name = :app_name", {"app_name": "web"})``.
    Column names are the caller's keywords, never user input."""
    params = {column: value for column, value in wanted.items() if value is not None}
    where = "".join(f" AND {column} = :{column}" for column in params)
    return f"{select} WHERE 1 = 1{where}", params


def app_from_row(row: Row[Any]) -> App:
    return App(
        id=row.id,
        name=row.name,
        organization=Organization(
            name=row.org_name, slug=row.org_slug, sixpn_network=row.org_sixpn_network
        ),
        status=row.status,
        network=row.network,
        machine_count=row.machine_count,
        created_at=dt(row.created_at),
    )


def host_from_row(row: Row[Any]) -> Host:
    return Host(
        id=row.id,
        region=row.region,
        address=row.address,
        cpus=row.cpus,
        memory_mb=row.memory_mb,
        machine_subnet=row.machine_subnet,
        status=HostStatus(row.status),
        last_heartbeat=dt(row.last_heartbeat),
        registered_at=dt(row.registered_at),
        sixpn_host=row.sixpn_host,
    )


def host_values(host: Host) -> dict[str, Any]:
    return {
        "id": host.id,
        "region": host.region,
        "address": host.address,
        "cpus": host.cpus,
        "memory_mb": host.memory_mb,
        "machine_subnet": host.machine_subnet,
        "status": host.status.value,
        "last_heartbeat": ts(host.last_heartbeat),
        "registered_at": ts(host.registered_at),
        "sixpn_host": host.sixpn_host,
    }


def machine_from_row(row: Row[Any]) -> Machine:
    return Machine(
        id=row.id,
        name=row.name,
        app_name=row.app_name,
        state=row.state,
        desired_state=row.desired_state,
        region=row.region,
        instance_id=row.instance_id,
        private_ip=row.private_ip,
        host_ip=row.host_ip,
        config=MachineConfig.model_validate_json(row.config),
        image_ref=ImageRef.model_validate_json(row.image_ref),
        host_id=row.host_id,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
        checks=_CHECKS.validate_json(row.checks),
        exit_code=row.exit_code,
        restart_count=row.restart_count,
        generation=row.restart_generation,
        pending_signal=row.pending_signal,
        stop_override=(
            StopOverride.model_validate_json(row.stop_override) if row.stop_override else None
        ),
        cordoned=bool(row.cordoned),
        revision=row.revision,
    )


def encode_machine_changes(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"machine fields cannot be changed: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("config", "image_ref"):
            values[key] = value.model_dump_json()
        elif key == "stop_override":
            values[key] = None if value is None else value.model_dump_json()
        elif key == "checks":
            values[key] = _CHECKS.dump_json(value).decode()
        elif key == "updated_at":
            values[key] = ts(value)
        elif key == "generation":
            values["restart_generation"] = value
        elif key == "cordoned":
            values[key] = int(bool(value))
        elif key in ("state", "desired_state"):
            values[key] = str(value.value if hasattr(value, "value") else value)
        else:
            values[key] = value
    return values


def event_from_row(row: Row[Any]) -> MachineEvent:
    return MachineEvent(
        id=row.id,
        type=row.type,
        status=row.status,
        source=row.source,
        timestamp=row.timestamp,
        request=json.loads(row.request),
    )


def event_values(machine_id: str, item: MachineEvent) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "id": item.id,
        "type": item.type,
        "status": item.status,
        "source": item.source,
        "timestamp": item.timestamp,
        "request": json.dumps(item.request, default=str),
    }
