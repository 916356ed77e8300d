"""An app's configuration as its deployed machines have it, in fly.toml's shape.

This is what flyctl's ``config show`` prints for a Machines app whose release
holds no stored config: one fly.toml rebuilt from each machine, the most
common one wins, and every machine whose config differs is named in a
warning. Pure: the caller lists the machines and prints the result as JSON.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ferry.errors import ValidationError
from ferry.model import CheckConfig, Machine, MachineConfig, MachineState, ServiceConfig

__all__ = ["config_from_machines", "config_of_machine"]

_GONE = (MachineState.DESTROYED, MachineState.DESTROYING)


def config_from_machines(app: str, machines: Sequence[Machine]) -> tuple[dict[str, Any], list[str]]:
    """``(fly.toml as a dict, warnings)`` for ``app`` from its live machines.

    Raises ``ValidationError`` when the app has no machine that is not destroyed.
    """
    live = sorted((m for m in machines if m.state not in _GONE), key=lambda m: m.id)
    if not live:
        raise ValidationError(
            f"app {app} has no machines, so it has no deployed configuration",
            hint="deploy it first, or show the local file with `ferry config show --local`",
        )
    rendered = {m.id: config_of_machine(app, m.config) for m in live}
    keys = {mid: json.dumps(cfg, sort_keys=True) for mid, cfg in rendered.items()}
    counts = Counter(keys.values())
    # max() keeps the first of equals: a tie goes to the config of the lowest machine id.
    winner = max(dict.fromkeys(keys[m.id] for m in live), key=lambda key: counts[key])
    others = [m.id for m in live if keys[m.id] != winner]
    warnings = (
        [
            f"machines {', '.join(others)} run a config that differs from the one shown "
            f"(taken from {counts[winner]} of {len(live)} machines); the next deploy replaces it"
        ]
        if others
        else []
    )
    return json.loads(winner), warnings


def config_of_machine(app: str, config: MachineConfig) -> dict[str, Any]:
    """The fly.toml (as a dict with fly.toml's key names) that would give this machine."""
    result: dict[str, Any] = {"app": app}
    primary = config.env.get("PRIMARY_REGION")
    if primary:
        result["primary_region"] = primary
    stop = config.effective_stop
    result["kill_signal"] = stop.signal
    result["kill_timeout"] = stop.timeout
    result["build"] = {"image": config.image}
    if config.env:
        result["env"] = dict(sorted(config.env.items()))
    if config.init.cmd:
        group = config.metadata.get("fly_process_group") or "app"
        result["processes"] = {group: shlex.join(config.init.cmd)}
    experimental = {
        key: value
        for key, value in (("entrypoint", config.init.entrypoint), ("exec", config.init.exec))
        if value
    }
    if experimental:
        result["experimental"] = experimental
    if config.services:
        result["services"] = [_service(service) for service in config.services]
    if config.checks:
        result["checks"] = {name: _check(check) for name, check in sorted(config.checks.items())}
    guest = config.effective_guest
    result["vm"] = [{"cpu_kind": guest.cpu_kind, "cpus": guest.cpus, "memory_mb": guest.memory_mb}]
    # fly.toml spells the API's "no" as "never".
    policy = "never" if config.restart.policy == "no" else config.restart.policy
    result["restart"] = [{"policy": policy, "retries": config.restart.max_retries}]
    return result


def _service(service: ServiceConfig) -> dict[str, Any]:
    result: dict[str, Any] = {
        "protocol": service.protocol,
        "internal_port": service.internal_port,
        "auto_stop_machines": service.autostop,
        "auto_start_machines": service.autostart,
        "min_machines_running": service.min_machines_running,
        "ports": [
            port.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
            for port in service.ports
        ],
    }
    if service.concurrency is not None:
        result["concurrency"] = service.concurrency.model_dump(mode="json", exclude_none=True)
    http = [_check(c, with_type=False) for c in service.checks if c.type == "http"]
    tcp = [_check(c, with_type=False) for c in service.checks if c.type == "tcp"]
    if http:
        result["http_checks"] = http
    if tcp:
        result["tcp_checks"] = tcp
    return result


def _check(check: CheckConfig, *, with_type: bool = True) -> dict[str, Any]:
    data = check.model_dump(mode="json", exclude_none=True)
    if not with_type:
        data.pop("type", None)
    if check.type == "tcp":
        for key in ("method", "path", "protocol", "headers"):
            data.pop(key, None)
    elif not data.get("headers"):
        data.pop("headers", None)
    return data
