"""Build, push and serve small OCI images for integration tests, without Docker.

``build_busybox_image`` makes an OCI layout holding one layer: the host's static
busybox and a symlink per applet in /bin. ``push_image`` copies it into a registry
and returns the digest reference machines use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry.cluster.registry import registry_command, wait_registry_ready, write_registry_config

__all__ = [
    "BUSYBOX",
    "RunningRegistry",
    "build_busybox_image",
    "free_loopback_port",
    "push_image",
    "run_tool",
    "start_registry",
]

BUSYBOX = Path("/bin/busybox")
LAYOUT_TAG = "latest"


def run_tool(argv: Sequence[str], *, timeout: float = 120) -> str:
    """Run a command; on failure raise AssertionError with its stderr (a test setup failure)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def populate_busybox_rootfs(rootfs: Path) -> None:
    """Put the static busybox and all its applets (as symlinks) into ``rootfs/bin``."""
    bin_dir = rootfs / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    for applet in run_tool([str(BUSYBOX), "--list"]).split():
        link = bin_dir / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for directory in ("etc", "tmp", "proc", "sys", "dev"):
        (rootfs / directory).mkdir(exist_ok=True)


def build_busybox_image(
    workdir: Path,
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = ("sh",),
    env: Sequence[str] = (),
    working_dir: str | None = None,
    user: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Build a busybox OCI image in ``workdir/layout`` (tag ``latest``); return the layout.

    ``env`` entries are ``KEY=value``; ``files`` maps paths in the image (``etc/passwd``)
    to their text. Blocking (~0.2 s). Raises AssertionError if a tool fails.
    """
    layout = workdir / "layout"
    bundle = workdir / "bundle"
    image = f"{layout}:{LAYOUT_TAG}"
    run_tool(["umoci", "init", "--layout", str(layout)])
    run_tool(["umoci", "new", "--image", image])
    run_tool(["umoci", "unpack", "--image", image, str(bundle)])
    populate_busybox_rootfs(bundle / "rootfs")
    for relative, text in (files or {}).items():
        (bundle / "rootfs" / relative).parent.mkdir(parents=True, exist_ok=True)
        (bundle / "rootfs" / relative).write_text(text)
    run_tool(["umoci", "repack", "--image", image, str(bundle)])
    config = ["umoci", "config", "--image", image]
    config += ["--clear=config.entrypoint", "--clear=config.cmd"]
    config += [f"--config.entrypoint={arg}" for arg in entrypoint]
    config += [f"--config.cmd={arg}" for arg in cmd]
    config += [f"--config.env={entry}" for entry in env]
    if working_dir is not None:
        config.append(f"--config.workingdir={working_dir}")
    if user is not None:
        config.append(f"--config.user={user}")
    run_tool(config)
    run_tool(["umoci", "gc", "--layout", str(layout)])
    shutil.rmtree(bundle)
    return layout


def push_image(
    layout: Path,
    registry_address: str,
    repo: str,
    tag: str = "latest",
    *,
    manifest_format: str = "oci",
) -> str:
    """Copy the layout's ``latest`` image to ``registry_address/repo:tag``.

    Returns ``"ADDR/repo@sha256:…"``. ``manifest_format="v2s2"`` pushes a Docker manifest.
    """
    digest_file = layout.parent / f"{repo.replace('/', '_')}-{tag}.digest"
    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"--digestfile={digest_file}"]
    if manifest_format != "oci":
        argv.append(f"--format={manifest_format}")
    argv += [f"oci:{layout}:{LAYOUT_TAG}", f"docker://{registry_address}/{repo}:{tag}"]
    run_tool(argv)
    return f"{registry_address}/{repo}@{digest_file.read_text().strip()}"


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningRegistry:
    """A docker-registry process on loopback; ``address`` is ``127.0.0.1:PORT``."""

    address: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        """Terminate the process by its pid and wait for it. Idempotent."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def start_registry(root: Path) -> RunningRegistry:
    """Start docker-registry with storage under ``root`` on a free loopback port; wait for it."""
    address = f"127.0.0.1:{free_loopback_port()}"
    config = write_registry_config(root, address)
    with (root / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            registry_command(config), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    running = RunningRegistry(address=address, root=root, process=process)
    try:
        wait_registry_ready(running.url, timeout=15)
    except BaseException:
        running.stop()
        raise
    return running
