"""`ferry scale vm` / `ferry scale memory`: the guest each machine gets, decided purely.

Fly's rules for a machine's memory (fly-go's machine presets): a shared CPU
takes 256 MB to 2 GB, a performance CPU 2 GB to 8 GB, multiplied by the
number of CPUs, in steps of 256 MB. A size preset sets CPUs and memory at
once; ``--vm-memory`` / ``scale memory`` change the memory within that range.
Everything here raises ``ValidationError`` before any machine is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from ferry.errors import ValidationError
from ferry.model import GuestConfig, Machine, MachineConfig, MachineState
from ferry.model.sizes import SIZE_PRESETS

__all__ = [
    "MEMORY_STEP_MB",
    "guest_for_size",
    "guest_with_memory",
    "machines_to_resize",
    "memory_range",
    "resized_config",
    "size_name",
]

MEMORY_STEP_MB = 256
_PER_CPU_MB = {"shared": (256, 2048), "performance": (2048, 8192)}
_GONE = (MachineState.DESTROYED, MachineState.DESTROYING)
_DEFAULT_GROUP = "app"


def memory_range(cpu_kind: str, cpus: int) -> tuple[int, int]:
    """``(min_mb, max_mb)`` Fly allows for ``cpus`` CPUs of ``cpu_kind``."""
    low, high = _PER_CPU_MB[cpu_kind]
    return low * cpus, high * cpus


def size_name(guest: GuestConfig) -> str:
    """``shared-cpu-2x`` for a guest whose CPUs match a preset, else ``2 shared CPUs``."""
    for name, (kind, cpus, _) in SIZE_PRESETS.items():
        if kind == guest.cpu_kind and cpus == guest.cpus:
            return name
    return f"{guest.cpus} {guest.cpu_kind} CPUs"


def guest_for_size(size: str, memory_mb: int | None = None) -> GuestConfig:
    """The guest of preset ``size``, with ``memory_mb`` instead of the preset's memory if given.

    Raises ``ValidationError`` naming the presets for an unknown size, and the
    allowed range for memory outside it.
    """
    base = GuestConfig.from_size(size)
    return base if memory_mb is None else guest_with_memory(base, memory_mb)


def guest_with_memory(guest: GuestConfig, memory_mb: int) -> GuestConfig:
    """``guest`` with ``memory_mb``; raises ``ValidationError`` when Fly would refuse it."""
    low, high = memory_range(guest.cpu_kind, guest.cpus)
    size = size_name(guest)
    if not low <= memory_mb <= high:
        raise ValidationError(
            f"{memory_mb} MB is outside what {size} allows ({low}-{high} MB)",
            hint=f"pick a memory between {low} and {high} MB, or another size "
            "with `ferry scale vm SIZE --vm-memory MB`",
        )
    if memory_mb % MEMORY_STEP_MB:
        lower = memory_mb - memory_mb % MEMORY_STEP_MB
        raise ValidationError(
            f"{memory_mb} MB is not a multiple of {MEMORY_STEP_MB} MB",
            hint=f"use {max(lower, low)} or {min(lower + MEMORY_STEP_MB, high)}",
        )
    return guest.model_copy(update={"memory_mb": memory_mb})


def machines_to_resize(machines: Sequence[Machine], process_group: str | None) -> list[Machine]:
    """The app's machines that are not destroyed, of ``process_group`` if given, by region and id.

    Raises ``ValidationError`` when there are none, naming the groups that exist.
    """
    live = [m for m in machines if m.state not in _GONE]
    chosen = [m for m in live if process_group in (None, _group(m))]
    if not chosen:
        if process_group is not None and live:
            groups = ", ".join(sorted({_group(m) for m in live}))
            raise ValidationError(
                f"no machine of process group {process_group!r}",
                hint=f"the app's machines are in: {groups}",
            )
        raise ValidationError(
            "the app has no machines to resize", hint="deploy it first with `ferry deploy`"
        )
    return sorted(chosen, key=lambda m: (m.region, m.id))


def resized_config(config: MachineConfig, guest: GuestConfig) -> MachineConfig:
    """``config`` with ``guest`` in place of its guest or size preset; all else unchanged."""
    return config.model_copy(update={"guest": guest, "size": None})


def _group(machine: Machine) -> str:
    return machine.config.metadata.get("fly_process_group") or _DEFAULT_GROUP
