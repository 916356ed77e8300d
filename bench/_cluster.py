"""Shared by the cluster benchmarks: a throw-away cluster with the demo app's image in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ferry.cluster.settings import ClusterSettings

REPO = Path(__file__).resolve().parents[1]


def ferry_cli(settings: ClusterSettings, *args: str, cwd: Path | None = None) -> str:
    """Run the `ferry` CLI against ``settings``' cluster; raise with its output on failure."""
    env = {
        **os.environ,
        "FERRY_HOME": str(settings.home),
        "FERRY_API_URL": settings.api_url,
        "FERRY_API_TOKEN": settings.token_path.read_text().strip(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ferry", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ferry {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def demo_app_dir() -> Path:
    """A copy of the demo app with busybox beside its Dockerfile (caller removes it)."""
    target = Path(tempfile.mkdtemp(prefix="ferry-bench-app-")) / "demo"
    shutil.copytree(REPO / "demo", target)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise SystemExit("busybox is missing: run `make up` or `make test` once to install it")
    shutil.copy(busybox, target / "busybox")
    return target
