"""Warnings about a fly.toml that parsed: things that work, but probably not as meant.

`ferry config validate` prints these after the file passed every check of
``parse_app_config`` (whose first error it prints instead). Pure.
"""

from __future__ import annotations

from ferry.config.app_config import AppConfig

__all__ = ["config_warnings"]


def config_warnings(config: AppConfig, *, dockerfile_beside: bool) -> list[str]:
    """One sentence per thing a user would want to know before deploying ``config``.

    ``dockerfile_beside``: whether a ``Dockerfile`` sits next to the fly.toml
    (``ferry deploy`` builds it when ``[build]`` names no image or Dockerfile).
    Warnings the parser itself collected (``AppConfig.warnings``, such as
    unknown keys, when the parser provides them) come first.
    """
    found: list[str] = list(config.warnings)
    if not config.app:
        found.append("no `app`: commands need -a APP (or $FLY_APP) to know which app")
    if not config.primary_region:
        found.append(
            "no `primary_region`: a first deploy creates machines in the cluster's first "
            "region unless you pass --regions"
        )
    if not config.services:
        found.append("no [http_service] or [[services]]: the edge sends no requests to this app")
    elif not config.checks and not any(service.value.checks for service in config.services):
        found.append(
            "no health checks: a deploy counts a machine as ready as soon as it starts, "
            "and the edge cannot take a broken machine out of rotation"
        )
    build = config.build
    if not build.image and not build.dockerfile and not dockerfile_beside:
        found.append(
            "nothing to deploy: set [build] image or [build] dockerfile, put a Dockerfile "
            "next to fly.toml, or pass --image to `ferry deploy`"
        )
    return found
