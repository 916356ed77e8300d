"""The OCI runtime spec (``config.json``) of a machine's container, built purely.

The defaults follow Docker's: its default capability set, masked and read-only
``/proc`` and ``/sys`` paths, ``noNewPrivileges``, and the usual pseudo-file
systems. Resource limits come from the machine's guest size. A spec with an
``id_range`` gets a user namespace of its own mapped to that host range (see
``ferry.runtime.userns`` and docs/isolation.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferry.runtime.driver import ContainerSpec
from ferry.runtime.image_user import ExecUser, resolve_user

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "build_runtime_spec",
    "render_hosts_file",
]

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD_US = 100_000
OPEN_FILES_LIMIT = 65_536


def render_hosts_file(hostname: str, private_ip: str = "") -> str:
    """An /etc/hosts that resolves localhost and the machine's own hostname and, with
    ``private_ip`` (its 6PN address), ``fly-local-6pn`` to it, as Fly's machines do:
    a server binds ``fly-local-6pn:PORT`` to listen on the private network only."""
    lines = (
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    )
    if private_ip:
        lines += f"{private_ip}\tfly-local-6pn\n"
    return lines


def _env_list(env: dict[str, str]) -> list[str]:
    merged = {"PATH": DEFAULT_PATH, **env}
    return [f"{key}={value}" for key, value in merged.items()]


TMP_SIZE = "65536k"


def _sys_mount(sysfs_source: Path | None) -> dict[str, Any]:
    if sysfs_source is None:
        return {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        }
    # mounted by the driver for the machine's network namespace (a user namespace
    # cannot mount a sysfs for a network namespace it does not own): bound here
    return {
        "destination": "/sys",
        "type": "bind",
        "source": str(sysfs_source),
        "options": ["rbind", "ro", "nosuid", "noexec", "nodev"],
    }


def _mounts(
    hosts_file: Path | None, resolv_conf: Path | None, sysfs_source: Path | None
) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        _sys_mount(sysfs_source),
    ]
    for destination, source in (("/etc/hosts", hosts_file), ("/etc/resolv.conf", resolv_conf)):
        if source is not None:
            mounts.append(
                {
                    "destination": destination,
                    "type": "bind",
                    "source": str(source),
                    "options": ["rbind", "ro"],
                }
            )
    return mounts


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    memory_bytes = spec.memory_mb * 1024 * 1024
    return {
        "devices": [{"allow": False, "access": "rwm"}],
        # swap equal to the limit: memory+swap may not exceed it, so a hog is OOM-killed
        "memory": {"limit": memory_bytes, "swap": memory_bytes},
        "cpu": {
            "shares": spec.cpu_shares,
            "quota": max(1000, round(spec.cpus * CPU_PERIOD_US)),
            "period": CPU_PERIOD_US,
        },
        "pids": {"limit": spec.pids_limit},
    }


def build_runtime_spec(
    spec: ContainerSpec,
    rootfs: Path,
    cgroups_path: str,
    *,
    hosts_file: Path | None = None,
    resolv_conf: Path | None = None,
    open_files_limit: int = OPEN_FILES_LIMIT,
    user: ExecUser | None = None,
    seccomp: dict[str, Any] | None = None,
    sysfs_source: Path | None = None,
    volumes: tuple[tuple[str, Path], ...] = (),
) -> dict[str, Any]:
    """The OCI runtime spec (as a JSON-ready dict) to run ``spec`` on ``rootfs``.

    ``cgroups_path`` is passed through verbatim (use an absolute ``/parent/id``).
    ``hosts_file`` and ``resolv_conf``, when given, are bind-mounted read-only
    over /etc/hosts and /etc/resolv.conf. ``open_files_limit`` must not exceed the
    runtime's own hard RLIMIT_NOFILE (runc cannot raise it). ``user``: the image's
    ``User`` resolved with its /etc files (``read_image_user``); without it only a
    numeric ``User`` can be resolved (``RuntimeFailure`` for a name). The user's home
    becomes ``HOME`` unless the environment sets it. ``seccomp``: the OCI
    ``linux.seccomp`` (``ferry.runtime.seccomp.runtime_seccomp``). ``sysfs_source``: a
    sysfs already mounted for the machine's network namespace, bound read-only on
    /sys instead of a sysfs of runc's (needed with a user namespace and a network
    namespace made outside it). ``spec.id_range``: a user namespace with that uid and
    gid mapping; the rootfs must then show the image's files shifted into it
    (the driver's idmapped lower layer). ``spec.readonly_root``: a read-only root
    with a tmpfs on /tmp. ``volumes``: (path in the machine, host directory) of each
    volume, bound read-write (nosuid, nodev). Pure: touches no file.
    """
    if user is None:
        user = resolve_user(spec.image.config.user, None, None)
    process_user: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process_user["additionalGids"] = list(user.additional_gids)
    env = spec.env if "HOME" in spec.env else {**spec.env, "HOME": user.home}
    capabilities = list(DEFAULT_CAPABILITIES)
    namespaces: list[dict[str, str]] = [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network", "path": str(spec.netns_path)}
        if spec.netns_path is not None
        else {"type": "network"},
    ]
    if spec.id_range is not None:
        namespaces.insert(0, {"type": "user"})
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": _resources(spec),
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.id_range is not None:
        linux["uidMappings"] = spec.id_range.oci_mappings()
        linux["gidMappings"] = spec.id_range.oci_mappings()
    if seccomp is not None:
        linux["seccomp"] = seccomp
    mounts = _mounts(hosts_file, resolv_conf, sysfs_source) + _init_mounts(spec)
    mounts += [
        {
            "destination": destination,
            "type": "bind",
            "source": str(source),
            "options": ["bind", "rw", "nosuid", "nodev"],
        }
        for destination, source in volumes
    ]
    if spec.readonly_root:
        mounts.append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", f"size={TMP_SIZE}"],
            }
        )
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": process_user,
            "args": _args(spec),
            "env": _env_list(env),
            "cwd": spec.working_dir or "/",
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": open_files_limit, "soft": open_files_limit}
            ],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": spec.readonly_root},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }


INIT_PATH = "/.ferry/init"


def _args(spec: ContainerSpec) -> list[str]:
    if spec.init_binary is None:
        return list(spec.process_args)
    return [INIT_PATH, "-s", "--", *spec.process_args]


def _init_mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    if spec.init_binary is None:
        return []
    return [
        {
            "destination": INIT_PATH,
            "type": "bind",
            "source": str(spec.init_binary),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
    ]
