"""Which process a machine runs and with what environment: Docker/Fly semantics, pure.

``resolve_process`` applies a machine's ``init`` overrides to an image's
entrypoint and command the way ``docker run --entrypoint`` does; ``merge_env``
lays a machine's env over the image's.
"""

from __future__ import annotations

from ferry.errors import ValidationError
from ferry.model.machine import InitConfig
from ferry.runtime.driver import ImageConfig

__all__ = ["merge_env", "resolve_process"]


def resolve_process(image: ImageConfig, init: InitConfig) -> tuple[str, ...]:
    """The argv a machine runs.

    - ``init.exec`` replaces everything.
    - Otherwise argv = entrypoint + cmd, where entrypoint is ``init.entrypoint``
      or the image's, and cmd is ``init.cmd`` or the image's. As in Docker,
      overriding the entrypoint without giving a cmd drops the image's cmd.

    Pure. Raises ``ValidationError`` when the result is empty.
    """
    if init.exec:
        return tuple(init.exec)
    if init.entrypoint is not None:
        entrypoint = tuple(init.entrypoint)
        cmd = tuple(init.cmd) if init.cmd is not None else ()
    else:
        entrypoint = image.entrypoint
        cmd = tuple(init.cmd) if init.cmd is not None else image.cmd
    argv = entrypoint + cmd
    if not argv:
        raise ValidationError(
            "the image has no command to run (no entrypoint and no cmd)",
            hint="set [experimental] cmd or entrypoint in fly.toml, or config.init.cmd",
        )
    return argv


def merge_env(image_env: tuple[str, ...], env: dict[str, str]) -> dict[str, str]:
    """The image's ``KEY=value`` entries overlaid with the machine's env (the machine wins).

    Pure. An image entry without ``=`` is kept with an empty value, as Docker does
    for ``ENV KEY``; the image's order is preserved, machine-only keys follow.
    """
    merged: dict[str, str] = {}
    for entry in image_env:
        key, _, value = entry.partition("=")
        if key:
            merged[key] = value
    merged.update(env)
    return merged
