"""The runc driver: each machine is a runc container on an overlay of its image.

Layout of ``state_dir/containers/<id>/``::

    config.json   OCI runtime spec (the bundle)
    upper/ work/  the container's writable overlay layer
    lower/        with a user namespace: the image's rootfs, idmapped into the
                  container's uid range, read-only (the overlay's lower layer)
    sys/          with a user namespace and a network namespace given: a sysfs
                  of that network namespace, bound on the container's /sys
    volumes/<n>/  with a user namespace: volume n, idmapped into the container's
                  range (read-write), bound on its path in the machine
    hosts         bind-mounted on /etc/hosts
    stdout.log    the process's stdout and stderr (and runc's own errors)
    pid           the container's init pid, written by runc
    shim.pid      pid of the shim that waits for runc and records the exit code
    exit_code     written by the shim when the process ends (128+N for signal N)
    labels.json   the labels of ``ContainerSpec``

The overlay itself (the container's root) is mounted on
``mounts_dir/<key>/<id>/root`` (``/run/ferry/rootfs`` by default; ``key`` tells
state dirs apart; ``<id>`` is 0700 and the container root's): runc mounts the
root from inside the container's user namespace, where root is an unprivileged
host uid that must be able to walk the path, and a state dir may sit under a
private directory (``/root``, a 0700 temp dir).

The shim is ``sh -c 'runc run …; echo $? > exit_code'`` in its own session, so
containers keep running, and their exit codes are still recorded, while the
agent is down. A new driver on the same ``state_dir`` adopts them via ``list``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal as signals
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ferry.errors import RuntimeFailure, ValidationError
from ferry.runtime.container_rootfs import (
    RootfsDirs,
    make_searchable_dirs,
    mount_rootfs,
    unmount_rootfs,
)
from ferry.runtime.driver import ContainerSpec, ContainerState, ContainerStatus
from ferry.runtime.guest_files import write_guest_files
from ferry.runtime.host_os import (
    cgroup_frozen,
    pid_in_cgroup,
    pid_is_running,
    remove_cgroup_dirs,
    thaw_cgroup,
)
from ferry.runtime.image_user import read_image_user, require_mapped_user
from ferry.runtime.logfiles import release_shipped_prefix
from ferry.runtime.oci_spec import (
    DEFAULT_CAPABILITIES,
    OPEN_FILES_LIMIT,
    build_runtime_spec,
    render_hosts_file,
)
from ferry.runtime.runc_exec import CommandResult, exec_in_container
from ferry.runtime.seccomp import DEFAULT_PROFILE, go_arch, load_profile, runtime_seccomp

__all__ = ["RuncDriver", "parse_signal"]

MOUNTS_DIR = Path("/run/ferry/rootfs")
START_TIMEOUT = 10.0
KILL_TIMEOUT = 10.0
_POLL = 0.002
_EXIT_CODE_GRACE = 0.2
# How long a process that is gone, whose shim has not yet recorded its exit code, is
# still shown running: runc's teardown can outlast the grace above on a loaded host, and
# an exit shown without its code makes the machine "failed" instead of "exited with N".
_EXIT_CODE_PATIENCE = 10.0
_LOG_TAIL_BYTES = 2000
_SHIM_SCRIPT = '"$1" --root "$2" run --bundle "$3" --pid-file "$4" "$5"; echo $? > "$6"'


def parse_signal(name: str) -> signals.Signals:
    """``"SIGTERM"``, ``"TERM"``, ``"term"`` or ``"15"`` → the signal.

    Raises ``ValidationError`` naming the unknown signal.
    """
    text = name.strip().upper()
    try:
        if text.isdigit():
            return signals.Signals(int(text))
        return signals.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError):
        raise ValidationError(
            f"unknown signal {name!r}", hint="use a name such as SIGTERM, SIGINT or SIGKILL"
        ) from None


class _Paths:
    """File names of one container's directory."""

    def __init__(self, directory: Path, rootfs: Path) -> None:
        self.dir = directory
        self.config = directory / "config.json"
        self.upper = directory / "upper"
        self.work = directory / "work"
        self.lower = directory / "lower"
        self.sys = directory / "sys"
        self.rootfs = rootfs
        self.volumes = directory / "volumes"
        self.rootfs_dirs = RootfsDirs(
            self.upper, self.work, self.lower, self.sys, rootfs, self.volumes
        )
        self.hosts = directory / "hosts"
        self.log = directory / "stdout.log"
        self.pid = directory / "pid"
        self.shim_pid = directory / "shim.pid"
        self.exit_code = directory / "exit_code"
        self.labels = directory / "labels.json"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


class RuncDriver:
    """``Driver`` backed by runc. Blocking; safe to use from several threads for distinct ids."""

    def __init__(
        self,
        state_dir: Path,
        *,
        runc_root: Path | None = None,
        cgroup_parent: str = "ferry",
        runc_binary: str = "runc",
        resolv_conf: Path | None = None,
        seccomp_profile: Path | None = DEFAULT_PROFILE,
        mounts_dir: Path = MOUNTS_DIR,
    ) -> None:
        """``seccomp_profile``: the containers-format profile every container runs
        under (``None``: none, for tests of other things only). ``mounts_dir``:
        where root filesystems are mounted; every directory above it must be
        searchable by others (the default, under /run, is). Raises
        ``RuntimeFailure`` naming the file when the profile cannot be read."""
        self.state_dir = state_dir.absolute()
        self.containers_dir = self.state_dir / "containers"
        self.runc_root = (runc_root or self.state_dir / "runc").absolute()
        self.cgroup_parent = cgroup_parent.strip("/")
        self.runc_binary = runc_binary
        self.resolv_conf = resolv_conf
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        self.runc_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        self.mounts_dir = mounts_dir.absolute() / key
        hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        unlimited = hard_nofile == resource.RLIM_INFINITY
        self.open_files_limit = (
            OPEN_FILES_LIMIT if unlimited else min(OPEN_FILES_LIMIT, hard_nofile)
        )
        self.seccomp = (
            None
            if seccomp_profile is None
            else runtime_seccomp(
                load_profile(seccomp_profile),
                DEFAULT_CAPABILITIES,
                arch=go_arch(),
                kernel_release=os.uname().release,
            )
        )
        self._shims: dict[str, subprocess.Popen[bytes]] = {}
        self._exiting_since: dict[str, float] = {}  # gone, exit code not recorded yet
        self._shims_lock = threading.Lock()
        self._mounts_lock = threading.Lock()

    # -- naming ---------------------------------------------------------------

    def cgroups_path(self, container_id: str) -> str:
        """The absolute cgroup path of a container, e.g. ``/ferry/<id>``."""
        return f"/{self.cgroup_parent}/{container_id}"

    def log_path(self, container_id: str) -> Path:
        return self._paths(container_id).log

    def release_log(self, container_id: str, upto: int) -> None:
        """Punch out the shipped prefix of ``stdout.log`` (see ``ferry.runtime.logfiles``):
        once more than a MiB is shipped, all but its last 64 KiB before ``upto``.

        Safe while the container appends; stateless, so it survives agent restarts.
        """
        release_shipped_prefix(self._paths(container_id).log, upto)

    def rootfs_path(self, container_id: str) -> Path:
        """Where the container's root filesystem (its overlay) is mounted on the host."""
        return self._paths(container_id).rootfs

    def _paths(self, container_id: str) -> _Paths:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise ValidationError(f"invalid container id {container_id!r}")
        return _Paths(self.containers_dir / container_id, self.mounts_dir / container_id / "root")

    # -- start ----------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerStatus:
        """Mount the overlay, write the bundle, spawn the shim; return once the process runs.

        Raises ``RuntimeFailure`` (after removing everything it made) if the container
        exists already, or its process is not running within ``START_TIMEOUT`` seconds.
        """
        paths = self._paths(spec.container_id)
        try:
            paths.dir.mkdir()
        except FileExistsError:
            raise RuntimeFailure(
                f"container {spec.container_id} already exists on this host",
                hint="destroy it before starting it again",
            ) from None
        try:
            return self._start_in(paths, spec)
        except BaseException:
            self.destroy(spec.container_id)
            raise

    def _start_in(self, paths: _Paths, spec: ContainerSpec) -> ContainerStatus:
        user = read_image_user(spec.image.rootfs, spec.image.config.user)
        if spec.id_range is not None:
            require_mapped_user(user, spec.id_range.size, spec.image.config.user)
        for directory in (paths.upper, paths.work):
            directory.mkdir()
        with self._mounts_lock:  # destroy removes mounts_dir when it empties
            make_searchable_dirs(self.mounts_dir)
            with contextlib.suppress(FileExistsError):
                paths.rootfs.parent.mkdir(mode=0o700)
        paths.hosts.write_text(render_hosts_file(spec.hostname, spec.private_ip))
        paths.labels.write_text(json.dumps(spec.labels))
        mounted = mount_rootfs(paths.rootfs_dirs, spec)
        runtime_spec = build_runtime_spec(
            spec,
            paths.rootfs,
            self.cgroups_path(spec.container_id),
            hosts_file=paths.hosts,
            resolv_conf=self.resolv_conf,
            open_files_limit=self.open_files_limit,
            user=user,
            seccomp=self.seccomp,
            sysfs_source=mounted.sysfs,
            volumes=mounted.volumes,
        )
        # The spec holds the process's environment, the app's secrets included: owner only.
        descriptor = os.open(paths.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as config:
            config.write(json.dumps(runtime_spec))
        write_guest_files(paths.rootfs, spec.files, mounted.owner)
        shim = self._spawn_shim(paths, spec.container_id)
        pid = self._wait_for_pid(paths, shim, spec.container_id)
        return ContainerStatus(
            spec.container_id, ContainerState.RUNNING, pid=pid, labels=dict(spec.labels)
        )

    def _spawn_shim(self, paths: _Paths, container_id: str) -> subprocess.Popen[bytes]:
        argv = [
            "sh",
            "-c",
            _SHIM_SCRIPT,
            "ferry-shim",
            self.runc_binary,
            str(self.runc_root),
            str(paths.dir),
            str(paths.pid),
            container_id,
            str(paths.exit_code),
        ]
        with paths.log.open("ab") as log:
            try:
                shim = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=paths.dir,
                )
            except OSError as exc:
                raise RuntimeFailure(f"could not spawn the runc shim: {exc}") from exc
        paths.shim_pid.write_text(str(shim.pid))
        with self._shims_lock:
            self._shims[container_id] = shim
        return shim

    def _wait_for_pid(self, paths: _Paths, shim: subprocess.Popen[bytes], container_id: str) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            pid = _read_int(paths.pid)
            if pid is not None and pid_is_running(pid):
                return pid
            if shim.poll() is not None:
                if pid is not None:  # ran and ended already: still a start
                    return pid
                raise RuntimeFailure(
                    f"runc could not start container {container_id} "
                    f"(exit {shim.returncode}): {_log_tail(paths.log) or 'no output'}"
                )
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"container {container_id} did not start within {START_TIMEOUT:.0f}s: "
                    f"{_log_tail(paths.log) or 'no output'}"
                )
            time.sleep(_POLL)

    # -- inspect --------------------------------------------------------------

    def inspect(self, container_id: str) -> ContainerStatus:
        """Status from the pid and exit_code files and /proc. Cheap: no exec, no runc."""
        paths = self._paths(container_id)
        if not paths.dir.is_dir():
            return ContainerStatus(container_id, ContainerState.MISSING)
        labels = self._read_labels(paths)
        self._reap_shim(container_id)
        pid = _read_int(paths.pid)
        exit_code = _read_int(paths.exit_code)
        if exit_code is None and pid is not None and self._is_running(container_id, pid):
            frozen = cgroup_frozen(self.cgroups_path(container_id))
            state = ContainerState.PAUSED if frozen else ContainerState.RUNNING
            return ContainerStatus(container_id, state, pid=pid, labels=labels)
        if exit_code is None and pid is not None and self._shim_alive(paths):
            exit_code = self._await_exit_code(paths, _EXIT_CODE_GRACE)
            if exit_code is None and self._still_exiting(container_id, paths):
                return ContainerStatus(container_id, ContainerState.RUNNING, pid=pid, labels=labels)
        with self._shims_lock:
            self._exiting_since.pop(container_id, None)
        return ContainerStatus(
            container_id, ContainerState.EXITED, pid=pid, exit_code=exit_code, labels=labels
        )

    def _still_exiting(self, container_id: str, paths: _Paths) -> bool:
        """The shim lives and will record the exit code: show the container running a
        little longer (up to ``_EXIT_CODE_PATIENCE``) rather than exited without it."""
        if not self._shim_alive(paths):
            return False
        with self._shims_lock:
            first = self._exiting_since.setdefault(container_id, time.monotonic())
        return time.monotonic() - first < _EXIT_CODE_PATIENCE

    def list(self) -> list[ContainerStatus]:
        """Every container directory under ``state_dir``, running or not, sorted by id."""
        return [self.inspect(entry.name) for entry in sorted(self.containers_dir.iterdir())]

    def _is_running(self, container_id: str, pid: int) -> bool:
        return pid_is_running(pid) and pid_in_cgroup(pid, self.cgroups_path(container_id))

    def _read_labels(self, paths: _Paths) -> dict[str, str]:
        try:
            loaded = json.loads(paths.labels.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def _shim_alive(self, paths: _Paths) -> bool:
        shim_pid = _read_int(paths.shim_pid)
        return shim_pid is not None and pid_is_running(shim_pid)

    def _reap_shim(self, container_id: str) -> None:
        with self._shims_lock:
            shim = self._shims.get(container_id)
            if shim is not None and shim.poll() is not None:
                del self._shims[container_id]

    def _await_exit_code(self, paths: _Paths, timeout: float) -> int | None:
        """Wait until the shim records the exit code (or has gone without doing so)."""
        deadline = time.monotonic() + timeout
        while True:
            code = _read_int(paths.exit_code)
            if code is not None:
                return code
            self._reap_shim(paths.dir.name)
            if not self._shim_alive(paths) or time.monotonic() > deadline:
                return _read_int(paths.exit_code)
            time.sleep(_POLL * 2)

    # -- pause, resume ----------------------------------------------------------

    def pause(self, container_id: str) -> ContainerStatus:
        """``runc pause``: freeze the container's cgroup (memory kept). Idempotent.

        Raises ``RuntimeFailure`` if it is not running or runc cannot freeze it.
        """
        status = self.inspect(container_id)
        if status.state is ContainerState.PAUSED:
            return status
        if status.state is not ContainerState.RUNNING:
            raise RuntimeFailure(
                f"container {container_id} is {status.state.value}; only a running one can pause"
            )
        self._runc("pause", container_id)
        return self._expect(container_id, ContainerState.PAUSED)

    def resume(self, container_id: str) -> ContainerStatus:
        """Thaw a paused container, as ``runc resume`` does: by its cgroup's freezer file
        (the exec of runc alone costs 10-20 ms on the wake path), or by ``runc resume``
        where there is no such file. runc reads the freezer, so ``runc state`` agrees.
        Idempotent on a running container.

        Raises ``RuntimeFailure`` if it is neither paused nor running.
        """
        status = self.inspect(container_id)
        if status.state is ContainerState.RUNNING:
            return status
        if status.state is not ContainerState.PAUSED:
            raise RuntimeFailure(
                f"container {container_id} is {status.state.value}; only a paused one can resume"
            )
        if not thaw_cgroup(self.cgroups_path(container_id)):
            self._runc("resume", container_id)
        return self._expect(container_id, ContainerState.RUNNING)

    def _expect(self, container_id: str, state: ContainerState) -> ContainerStatus:
        status = self.inspect(container_id)
        if status.state is not state:
            raise RuntimeFailure(
                f"container {container_id} is {status.state.value} after runc, not {state.value}"
            )
        return status

    def _thaw_if_frozen(self, container_id: str) -> None:
        """Thaw before a kill: a frozen process cannot act on a signal, not even SIGKILL."""
        if cgroup_frozen(self.cgroups_path(container_id)):
            self._runc("resume", container_id)

    # -- exec -------------------------------------------------------------------

    def exec_command(
        self, container_id: str, argv: Sequence[str], *, stdin: bytes, timeout: float, limit: int
    ) -> CommandResult:
        """Run ``argv`` in the running container as its own process runs (``runc exec``:
        its env, user, namespaces, cgroup); see ``ferry.runtime.runc_exec``. Blocking."""
        self._paths(container_id)  # refuses an id that is not a plain name
        return exec_in_container(
            self.runc_binary,
            self.runc_root,
            container_id,
            [*argv],
            stdin=stdin,
            timeout=timeout,
            limit=limit,
        )

    # -- signals, stop ----------------------------------------------------------

    def signal(self, container_id: str, signal: str) -> None:
        """Send ``signal`` to the container's init process; no-op if it is not running.

        The pid is checked against the container's cgroup first, so a reused pid is
        never signalled. Raises ``ValidationError`` for an unknown signal name.
        """
        signum = parse_signal(signal)
        paths = self._paths(container_id)
        pid = _read_int(paths.pid)
        if pid is None or _read_int(paths.exit_code) is not None:
            return
        if not self._is_running(container_id, pid):
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise RuntimeFailure(f"not allowed to signal container {container_id}") from exc

    def stop(self, container_id: str, signal: str, timeout: float) -> ContainerStatus:
        """Send ``signal``, wait up to ``timeout`` s, then SIGKILL; return the exited status.

        Idempotent: stopping an exited container returns its status. A paused one is
        thawed first, so its process sees the signal. Raises ``RuntimeFailure`` if
        the process survives SIGKILL for ``KILL_TIMEOUT`` s.
        """
        status = self.inspect(container_id)
        if status.state is ContainerState.PAUSED:
            self._thaw_if_frozen(container_id)
        elif status.state is not ContainerState.RUNNING:
            return status
        paths = self._paths(container_id)
        self.signal(container_id, signal)
        if not self._wait_exited(paths, timeout):
            self.signal(container_id, "SIGKILL")
            if not self._wait_exited(paths, KILL_TIMEOUT):
                raise RuntimeFailure(
                    f"container {container_id} did not exit {KILL_TIMEOUT:.0f}s after SIGKILL"
                )
        return self.inspect(container_id)

    def _wait_exited(self, paths: _Paths, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        container_id = paths.dir.name
        while True:
            if _read_int(paths.exit_code) is not None:
                return True
            self._reap_shim(container_id)
            pid = _read_int(paths.pid)
            if not self._shim_alive(paths) and (
                pid is None or not self._is_running(container_id, pid)
            ):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL * 2)

    # -- destroy ----------------------------------------------------------------

    def destroy(self, container_id: str) -> None:
        """Kill the process if needed, delete runc's state, unmount, remove the directory
        and the container's cgroups. Idempotent; also cleans up a half-created container.

        Raises ``RuntimeFailure`` if the process cannot be killed or a mount or cgroup
        cannot be removed.
        """
        paths = self._paths(container_id)
        if paths.dir.is_dir():
            if (self.runc_root / container_id).exists():
                self._thaw_if_frozen(container_id)
            self.signal(container_id, "SIGKILL")
            if not self._wait_exited(paths, KILL_TIMEOUT):
                raise RuntimeFailure(f"container {container_id} survived SIGKILL; not removed")
        with self._shims_lock:
            shim = self._shims.pop(container_id, None)
        if shim is not None:
            shim.wait(timeout=KILL_TIMEOUT)
        if (self.runc_root / container_id).exists():
            self._runc("delete", "--force", container_id)
        unmount_rootfs(paths.rootfs_dirs, legacy_rootfs=paths.dir / "rootfs")
        with self._mounts_lock, contextlib.suppress(OSError):  # the last one: no empty dir
            self.mounts_dir.rmdir()
        if paths.dir.is_dir():
            shutil.rmtree(paths.dir)
        remove_cgroup_dirs(self.cgroups_path(container_id).lstrip("/"))

    def cleanup(self) -> None:
        """Remove the parent cgroup (``/ferry``) and this driver's directory of root
        filesystem mount points where they are empty. Safe to call any time."""
        with contextlib.suppress(RuntimeFailure):  # still holds containers: keep it
            remove_cgroup_dirs(self.cgroup_parent)
        with contextlib.suppress(OSError):
            self.mounts_dir.rmdir()

    def _runc(self, *args: str) -> str:
        argv = [self.runc_binary, "--root", str(self.runc_root), *args]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"`{' '.join(argv)}` failed: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-_LOG_TAIL_BYTES:]
            raise RuntimeFailure(f"`runc {' '.join(args)}` failed: {stderr or 'no output'}")
        return done.stdout.decode(errors="replace")
