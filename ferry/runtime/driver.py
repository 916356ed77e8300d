"""The driver contract: how an agent runs a machine's container on its host.

One narrow Protocol (after Nomad's ``plugins/drivers``); the runc driver
implements it for real and ``FakeDriver`` (tests/unit) for unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from ferry.runtime.userns import IdRange


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config that decide how its process runs."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value" entries, as in the OCI config
    working_dir: str = "/"
    user: str = ""


@dataclass(frozen=True)
class LocalImage:
    """An image unpacked on this host: read-only rootfs shared by all its machines."""

    digest: str  # "sha256:<hex>" of the manifest
    rootfs: Path
    config: ImageConfig


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the driver needs to run one instance of a machine.

    ``process_args`` is the resolved argv (init overrides already applied);
    ``env`` is the full environment (image env merged with machine env).
    ``files`` (``config.files``: absolute guest path, content) are written
    into the container's root filesystem before its process starts.
    ``id_range``: run in a user namespace of its own that maps root inside to
    this host range (``None``: in the host's user namespace, as root).
    ``readonly_root``: the root filesystem is read-only (``/tmp`` a small tmpfs).
    """

    container_id: str
    image: LocalImage
    process_args: tuple[str, ...]
    env: dict[str, str]
    working_dir: str = "/"
    hostname: str = "machine"
    cpus: float = 1.0
    cpu_shares: int = 1024
    memory_mb: int = 256
    pids_limit: int = 1024
    netns_path: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # A static init (tini) run as PID 1 in front of the process, as Fly's init
    # is: it forwards signals (a PID 1 ignores unhandled ones) and reaps zombies.
    init_binary: Path | None = None
    files: tuple[tuple[str, bytes], ...] = ()
    id_range: IdRange | None = None
    readonly_root: bool = False
    private_ip: str = ""  # the machine's 6PN address: fly-local-6pn in its /etc/hosts
    # Volumes: (path in the machine, the host directory where the volume is mounted).
    volumes: tuple[tuple[str, Path], ...] = ()


class ContainerState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # frozen by ``Driver.pause``: processes and memory kept, nothing runs
    EXITED = "exited"  # process ended; exit_code is set when known
    MISSING = "missing"


@dataclass(frozen=True)
class ContainerStatus:
    container_id: str
    state: ContainerState
    pid: int | None = None
    exit_code: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


class Driver(Protocol):
    """Runs containers on one host. Every method is blocking and idempotent where stated."""

    def start(self, spec: ContainerSpec) -> ContainerStatus:
        """Create and start the container; return once its process runs.

        Raises ``RuntimeFailure`` (and leaves nothing behind) when it cannot start.
        A container with the same id must not exist (destroy it first).
        """
        ...

    def signal(self, container_id: str, signal: str) -> None:
        """Send ``signal`` (e.g. ``"SIGTERM"``) to the container's process.

        No-op if it has exited.
        """
        ...

    def stop(self, container_id: str, signal: str, timeout: float) -> ContainerStatus:
        """Send ``signal``, wait up to ``timeout`` seconds, then SIGKILL.

        Returns the exited status.
        """
        ...

    def pause(self, container_id: str) -> ContainerStatus:
        """Freeze every process of the container, keeping its memory (runc's cgroup freezer).

        Returns the ``PAUSED`` status once all are frozen. Idempotent. Raises
        ``RuntimeFailure`` if the container is not running or cannot be frozen.
        """
        ...

    def resume(self, container_id: str) -> ContainerStatus:
        """Thaw a paused container; returns the ``RUNNING`` status. Idempotent.

        Raises ``RuntimeFailure`` if the container is neither paused nor running.
        ``stop``, ``signal`` and ``destroy`` thaw a paused container themselves.
        """
        ...

    def inspect(self, container_id: str) -> ContainerStatus:
        """Current status; ``MISSING`` if the driver knows no such container, ``PAUSED`` if
        it is frozen. Cheap (no exec)."""
        ...

    def list(self) -> list[ContainerStatus]:
        """Every container this driver owns, running or exited (used to adopt after a restart)."""
        ...

    def destroy(self, container_id: str) -> None:
        """Kill if needed and remove the container, its mounts and files. Idempotent."""
        ...

    def log_path(self, container_id: str) -> Path:
        """The file that receives the container's stdout and stderr.

        Only ever appended to; but a prefix already passed to ``release_log`` may
        read back as NUL bytes (its disk space freed).
        """
        ...

    def release_log(self, container_id: str, upto: int) -> None:
        """The bytes of the log file before offset ``upto`` have been shipped: the
        driver may free their disk space. Offsets and the file's size stay valid.

        Never frees a byte at or after ``upto``, so nothing not yet shipped is lost.
        Cheap when there is little to free; a no-op for a missing container or a
        filesystem that cannot free part of a file. Raises ``RuntimeFailure`` on
        any other error.
        """
        ...


class ImageStore(Protocol):
    """Content-addressed image cache of one host."""

    def ensure(self, reference: str) -> LocalImage:
        """Pull (by digest) and unpack once; return the local image. Raises ``RuntimeFailure``
        or ``NotFoundError`` (image missing in the registry)."""
        ...
