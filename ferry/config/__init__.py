"""fly.toml → ``AppConfig`` → Machines-API ``MachineConfig``, with errors that name file, line, key.

config = load_app_config("fly.toml")
machine = config.machine_config("registry.local/app@sha256:…", region="ams")
"""

from __future__ import annotations

from ferry.config.app_config import AppConfig, BuildConfig, DeployConfig
from ferry.config.loader import CONFIG_FILENAME, find_config, load_app_config, parse_app_config

__all__ = [
    "CONFIG_FILENAME",
    "AppConfig",
    "BuildConfig",
    "DeployConfig",
    "find_config",
    "load_app_config",
    "parse_app_config",
]
