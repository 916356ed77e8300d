"""Frozen domain types shared by every part of Ferry."""

from __future__ import annotations

from ferry.model.duration import format_duration, parse_duration
from ferry.model.host import REGION_NAMES, App, Host, HostStatus, Organization, Region
from ferry.model.machine import (
    CheckConfig,
    CheckStatus,
    Concurrency,
    DesiredState,
    GuestConfig,
    ImageRef,
    InitConfig,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineState,
    RestartPolicy,
    ServiceConfig,
    ServicePort,
    StopConfig,
)
from ferry.model.machine_files import MachineFile
from ferry.model.sizes import DEFAULT_SIZE, SIZE_PRESETS
from ferry.model.states import Action, plan_action

__all__ = [
    "DEFAULT_SIZE",
    "REGION_NAMES",
    "SIZE_PRESETS",
    "Action",
    "App",
    "CheckConfig",
    "CheckStatus",
    "Concurrency",
    "DesiredState",
    "GuestConfig",
    "Host",
    "HostStatus",
    "ImageRef",
    "InitConfig",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineFile",
    "MachineState",
    "Organization",
    "Region",
    "RestartPolicy",
    "ServiceConfig",
    "ServicePort",
    "StopConfig",
    "format_duration",
    "parse_duration",
    "plan_action",
]
