"""Fly Machines-API config fields Ferry does not do yet, refused by name.

A request written for Fly may carry any field of Fly's ``MachineConfig``.
Ferry honours the ones its models declare; each one listed here is refused
with a sentence that names it and says why, so nothing a client sends is
dropped without a word. A field absent, null or empty (``[]``, ``{}``, ``""``,
``false``, ``0``) asks for nothing and is accepted (and dropped): Fly's own
clients send empty values for features they do not use. Any other field is
unknown and refused too.

These checks run only on a request to the Machines API (validation context
``REQUEST_CONTEXT``, see ``MachineConfig.from_request``): configs read back
from the store or from an API answer are parsed leniently, so a machine
stored by an older Ferry, or an agent older than its server, keeps working.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

__all__ = [
    "CHECK_REFUSED",
    "CONFIG_REFUSED",
    "GUEST_REFUSED",
    "INIT_REFUSED",
    "PORT_REFUSED",
    "REQUEST_CONTEXT",
    "SERVICE_REFUSED",
    "FlyConfigModel",
    "is_request",
    "refuse_unsupported",
]

#: Validation-context key that marks a Machines-API request (strict parsing).
REQUEST_CONTEXT = "ferry_machines_api_request"


def is_request(info: ValidationInfo) -> bool:
    """Whether this validation parses a request to the Machines API (refusals apply)."""
    return isinstance(info.context, dict) and bool(info.context.get(REQUEST_CONTEXT))


_VOLUMES = "use config.mounts with a volume made by `POST /v1/apps/{app}/volumes`"

CONFIG_REFUSED: Mapping[str, str] = {
    "volumes": _VOLUMES,
    "metrics": "Ferry does not scrape app metrics yet",
    "schedule": "scheduled machines are not built yet",
    "standbys": "standby machines are not built yet",
    "dns": "per-machine DNS settings are not built yet",
    "processes": "extra processes in one machine are not built yet; use a process group per "
    "machine (fly.toml [processes])",
    "containers": "Ferry runs one container per machine",
    "disable_machine_autostart": "use services[].autostart instead",
}
GUEST_REFUSED: Mapping[str, str] = {
    "kernel_args": "machines are containers, not VMs: there is no kernel to pass arguments to",
    "gpu_kind": "GPUs are not supported",
    "gpus": "GPUs are not supported",
    "host_dedication_id": "dedicated hosts are not supported",
    "persist_rootfs": "a machine's root filesystem is replaced on every start",
}
INIT_REFUSED: Mapping[str, str] = {
    "swap_size_mb": "swap is not supported",
    "kernel_args": "machines are containers, not VMs: there is no kernel to pass arguments to",
}
SERVICE_REFUSED: Mapping[str, str] = {
    "force_instance_key": "pinning requests to one instance by key is not built yet",
    "force_instance_description": "pinning requests to one instance is not built yet",
}
PORT_REFUSED: Mapping[str, str] = {
    "proxy_proto_options": "the PROXY protocol is not built yet",
}
CHECK_REFUSED: Mapping[str, str] = {
    "kind": "check kinds (readiness, informational) are not built yet",
}


def _empty(value: object) -> bool:
    return value is None or value is False or value in ("", 0) or value == [] or value == {}


def refuse_unsupported(
    data: object, refused: Mapping[str, str], known: Collection[str] = ()
) -> object:
    """``data`` without the empty refused fields; raises ``ValueError`` for a set one,
    or for a field neither ``known`` nor ``refused``.

    The message names the field and why; pydantic turns it into a 400 naming
    the object it sits in (``config``, ``config.services.0`` …).
    """
    if not isinstance(data, dict):
        return data
    for key in data:
        if key not in known and key not in refused:
            raise ValueError(f"unknown field {key!r}: Ferry neither knows nor ignores it")
    kept = dict(data)
    for key, why in refused.items():
        if key not in kept:
            continue
        if not _empty(kept[key]):
            raise ValueError(f"{key} is not supported yet by Ferry ({why})")
        del kept[key]
    return kept


class FlyConfigModel(BaseModel):
    """Base of every part of a machine's ``config``.

    Parsed leniently by default (stored machines, API answers read by the
    agent and the edge: unknown fields ignored). Parsed with the
    ``REQUEST_CONTEXT`` (``MachineConfig.from_request``), a field that is
    neither declared nor in ``refused_fields`` is refused as unknown, and a
    set ``refused_fields`` one with its reason.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    #: Fly fields of this object that Ferry refuses (name → why).
    refused_fields: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _only_known_fields(cls, data: object, info: ValidationInfo) -> object:
        if not is_request(info):
            return data
        return refuse_unsupported(data, cls.refused_fields, known=cls.model_fields)
