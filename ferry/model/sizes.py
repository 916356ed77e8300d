"""Fly's guest size presets (``shared-cpu-1x`` …) mapped to CPUs and memory."""

from __future__ import annotations

from typing import Final

from ferry.errors import ValidationError

#: preset name -> (cpu_kind, cpus, memory_mb); memory is Fly's default for the preset.
SIZE_PRESETS: Final[dict[str, tuple[str, int, int]]] = {
    "shared-cpu-1x": ("shared", 1, 256),
    "shared-cpu-2x": ("shared", 2, 512),
    "shared-cpu-4x": ("shared", 4, 1024),
    "shared-cpu-6x": ("shared", 6, 1536),
    "shared-cpu-8x": ("shared", 8, 2048),
    "performance-1x": ("performance", 1, 2048),
    "performance-2x": ("performance", 2, 4096),
    "performance-4x": ("performance", 4, 8192),
    "performance-6x": ("performance", 6, 12288),
    "performance-8x": ("performance", 8, 16384),
    "performance-10x": ("performance", 10, 20480),
    "performance-12x": ("performance", 12, 24576),
    "performance-14x": ("performance", 14, 28672),
    "performance-16x": ("performance", 16, 32768),
}

DEFAULT_SIZE: Final = "shared-cpu-1x"


def preset(name: str) -> tuple[str, int, int]:
    """Return ``(cpu_kind, cpus, memory_mb)`` for a preset or raise ``ValidationError``."""
    try:
        return SIZE_PRESETS[name]
    except KeyError:
        known = ", ".join(SIZE_PRESETS)
        raise ValidationError(
            f"unknown machine size {name!r}", hint=f"use one of: {known}"
        ) from None
