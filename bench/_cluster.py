"""Shared by the cluster benchmarks: the CLI against a throw-away cluster, the demo app."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ferry.cluster.ephemeral import copy_demo_app, run_cli
from ferry.cluster.settings import ClusterSettings


def ferry_cli(settings: ClusterSettings, *args: str, cwd: Path | None = None) -> str:
    """Run the `ferry` CLI against ``settings``' cluster; raise with its output on failure."""
    result = run_cli(settings, *args, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"ferry {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def demo_app_dir() -> Path:
    """A copy of the demo app with busybox beside its Dockerfile (caller removes its parent)."""
    return copy_demo_app(Path(tempfile.mkdtemp(prefix="ferry-bench-app-")))
