"""Starting, stopping and describing an embedded cluster (what ``ferry cluster`` calls)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ferry.cluster.cleanup import cleanup_cluster
from ferry.cluster.settings import ClusterSettings
from ferry.errors import ConfigError, UnavailableError

REQUIRED_TOOLS = (
    "runc",
    "skopeo",
    "umoci",
    "buildah",
    "docker-registry",
    "ip",
    "nsenter",
    "busybox",
    "tini-static",
)


def check_prerequisites() -> None:
    """Raise ``ConfigError`` naming what is missing to run a cluster on this machine."""
    if os.geteuid() != 0:
        raise ConfigError("the embedded cluster needs root", hint="run it as root (sudo)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ConfigError(
            f"missing tools: {', '.join(missing)}", hint="run `make up` once to install them"
        )


def supervisor_pid(settings: ClusterSettings) -> int | None:
    """PID of the running supervisor, or None."""
    try:
        pid = int(settings.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_alive(pid) else None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (and is reaped if it is our child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pick_octet(preferred: int) -> int:
    """A second octet whose 10.X.0.0/16 the root namespace does not route yet."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False)
    used = []
    for line in routes.stdout.splitlines():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    octet: int
    for octet in [preferred, *range(64, 250)]:
        candidate = ipaddress.ip_network(f"10.{octet}.0.0/16")
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return octet
    raise UnavailableError("no free 10.X.0.0/16 network for the cluster")


def cluster_up(settings: ClusterSettings, *, timeout: float = 90.0) -> ClusterSettings:
    """Start the supervisor in the background and wait until every host has registered.

    Returns the settings actually used. Raises ``UnavailableError`` with the
    supervisor's log tail if the cluster does not come up.
    """
    check_prerequisites()
    if settings.settings_path.exists():
        current = ClusterSettings.load(settings.home)
        if supervisor_pid(current) is not None:
            return current
        cleanup_cluster(current, purge=False)  # leftovers of a crashed cluster
    settings = settings.model_copy(update={"octet": pick_octet(settings.octet)})
    settings.save()
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    with (settings.log_dir / "supervisor.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ferry.cluster.supervisor", "--home", str(settings.home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    # remote hosts join by token after the others: up means they are up too
    want = {h.host_id for h in settings.plan.hosts} | {
        r.host_id for r in settings.plan.remote_hosts
    }
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UnavailableError(
                "the cluster supervisor exited during start-up:\n"
                + log_tail(settings, "supervisor")
            )
        if want <= registered_hosts(settings):
            return settings
        time.sleep(0.2)
    raise UnavailableError(
        f"the cluster did not come up in {timeout:.0f}s:\n" + log_tail(settings, "supervisor")
    )


def registered_hosts(settings: ClusterSettings) -> set[str]:
    """Ids of hosts the control plane reports up (empty while it is not reachable)."""
    try:
        token = settings.token_path.read_text().strip()
        response = httpx.get(
            f"{settings.api_url}/v1/hosts",
            headers={"Authorization": f"Bearer {token}"},
            timeout=2.0,
        )
    except (OSError, httpx.HTTPError):
        return set()
    if response.status_code != 200:
        return set()
    return {h["id"] for h in response.json() if h.get("status") == "up"}


def cluster_down(home: Path, *, purge: bool, timeout: float = 60.0) -> bool:
    """Stop the cluster in ``home`` and remove what it made. Returns False if none was there."""
    try:
        settings = ClusterSettings.load(home)
    except ConfigError:
        return False
    pid = supervisor_pid(settings)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
    cleanup_cluster(settings, purge=purge)
    if not purge:
        settings.settings_path.unlink(missing_ok=True)
    return True


def log_tail(settings: ClusterSettings, name: str, lines: int = 25) -> str:
    try:
        text = (settings.log_dir / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ClusterStatus:
    settings: ClusterSettings
    running: bool
    supervisor_pid: int | None
    hosts_up: set[str]


def cluster_status(home: Path) -> ClusterStatus:
    settings = ClusterSettings.load(home)
    pid = supervisor_pid(settings)
    return ClusterStatus(
        settings, pid is not None, pid, registered_hosts(settings) if pid else set()
    )
