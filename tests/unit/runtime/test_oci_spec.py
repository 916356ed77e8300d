"""The OCI runtime spec built for a container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.driver import ContainerSpec, ImageConfig, LocalImage
from ferry.runtime.image_user import ExecUser
from ferry.runtime.oci_spec import (
    DEFAULT_CAPABILITIES,
    build_runtime_spec,
    render_hosts_file,
)
from ferry.runtime.userns import IdRange

ROOTFS = Path("/state/containers/c1/rootfs")


def make_spec(**overrides: Any) -> ContainerSpec:
    image = LocalImage("sha256:" + "a" * 64, Path("/cache/rootfs/a"), ImageConfig(user="1000:50"))
    fields: dict[str, Any] = {
        "container_id": "c1",
        "image": image,
        "process_args": ("/app", "--serve"),
        "env": {"MODE": "prod"},
        "working_dir": "/srv",
        "hostname": "m-1",
        "cpus": 2.0,
        "cpu_shares": 512,
        "memory_mb": 256,
        "pids_limit": 100,
    }
    fields.update(overrides)
    return ContainerSpec(**fields)


def test_process_runs_the_args_env_cwd_and_user_without_a_terminal() -> None:
    process = build_runtime_spec(make_spec(), ROOTFS, "/ferry/c1")["process"]

    assert process["args"] == ["/app", "--serve"]
    assert "MODE=prod" in process["env"]
    assert any(entry.startswith("PATH=") for entry in process["env"])
    assert process["cwd"] == "/srv"
    assert process["user"] == {"uid": 1000, "gid": 50}
    assert process["terminal"] is False
    assert process["noNewPrivileges"] is True
    assert process["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in process["capabilities"]["effective"]


def test_machine_env_path_wins_over_the_default() -> None:
    env = build_runtime_spec(make_spec(env={"PATH": "/opt"}), ROOTFS, "/x")["process"]["env"]
    assert [e for e in env if e.startswith("PATH=")] == ["PATH=/opt"]


def test_resources_follow_the_guest_size() -> None:
    resources = build_runtime_spec(make_spec(), ROOTFS, "/ferry/c1")["linux"]["resources"]

    assert resources["memory"]["limit"] == 256 * 1024 * 1024
    assert resources["cpu"] == {"shares": 512, "quota": 200_000, "period": 100_000}
    assert resources["pids"] == {"limit": 100}


def test_fractional_cpus_become_a_quota() -> None:
    resources = build_runtime_spec(make_spec(cpus=0.5), ROOTFS, "/x")["linux"]["resources"]
    assert resources["cpu"]["quota"] == 50_000


def test_root_hostname_and_cgroup_path() -> None:
    runtime_spec = build_runtime_spec(make_spec(), ROOTFS, "/ferry/c1")

    assert runtime_spec["root"] == {"path": str(ROOTFS), "readonly": False}
    assert runtime_spec["hostname"] == "m-1"
    assert runtime_spec["linux"]["cgroupsPath"] == "/ferry/c1"


def test_new_namespaces_including_an_empty_network() -> None:
    namespaces = build_runtime_spec(make_spec(), ROOTFS, "/x")["linux"]["namespaces"]
    assert namespaces == [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network"},
    ]


def test_given_network_namespace_is_joined() -> None:
    spec = make_spec(netns_path=Path("/run/netns/m1"))
    namespaces = build_runtime_spec(spec, ROOTFS, "/x")["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/m1"} in namespaces


def test_standard_mounts_with_sys_read_only() -> None:
    mounts = build_runtime_spec(make_spec(), ROOTFS, "/x")["mounts"]
    by_destination = {mount["destination"]: mount for mount in mounts}

    assert set(by_destination) == {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    assert "ro" in by_destination["/sys"]["options"]


def test_hosts_and_resolv_conf_are_bind_mounted_read_only() -> None:
    runtime_spec = build_runtime_spec(
        make_spec(), ROOTFS, "/x", hosts_file=Path("/h"), resolv_conf=Path("/r")
    )
    binds = {m["destination"]: m for m in runtime_spec["mounts"] if m["type"] == "bind"}

    assert binds["/etc/hosts"]["source"] == "/h"
    assert binds["/etc/resolv.conf"]["source"] == "/r"
    assert "ro" in binds["/etc/hosts"]["options"]


def test_sensitive_proc_paths_are_masked_or_read_only() -> None:
    linux = build_runtime_spec(make_spec(), ROOTFS, "/x")["linux"]
    assert "/proc/kcore" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]


def test_a_resolved_user_brings_its_groups_and_home() -> None:
    user = ExecUser(1000, 1000, (27, 100), "/home/node")
    process = build_runtime_spec(make_spec(), ROOTFS, "/x", user=user)["process"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [27, 100]}
    assert "HOME=/home/node" in process["env"]
    own_home = build_runtime_spec(make_spec(env={"HOME": "/data"}), ROOTFS, "/x", user=user)
    assert [e for e in own_home["process"]["env"] if e.startswith("HOME=")] == ["HOME=/data"]


def test_a_named_user_cannot_be_resolved_without_the_image_files() -> None:
    image = LocalImage("sha256:" + "a" * 64, Path("/cache"), ImageConfig(user="node"))
    with pytest.raises(RuntimeFailure, match="node"):
        build_runtime_spec(make_spec(image=image), ROOTFS, "/x")


def test_hosts_file_names_the_machine() -> None:
    assert "127.0.1.1\tm-1" in render_hosts_file("m-1")


def test_hosts_file_maps_fly_local_6pn_to_the_private_address() -> None:
    hosts = render_hosts_file("m-1", "fdaa:0:1:0:1:0:1:2")
    assert "fdaa:0:1:0:1:0:1:2\tfly-local-6pn\n" in hosts.splitlines(keepends=True)
    assert "fly-local-6pn" not in render_hosts_file("m-1")  # no address, no name


def test_a_machine_with_an_id_range_gets_its_own_user_namespace() -> None:
    linux = build_runtime_spec(make_spec(id_range=IdRange(300_000)), ROOTFS, "/x")["linux"]

    assert {"type": "user"} in linux["namespaces"]
    mapping = [{"containerID": 0, "hostID": 300_000, "size": 65_536}]
    assert linux["uidMappings"] == mapping and linux["gidMappings"] == mapping


def test_without_an_id_range_there_is_no_user_namespace() -> None:
    linux = build_runtime_spec(make_spec(), ROOTFS, "/x")["linux"]

    assert {"type": "user"} not in linux["namespaces"]
    assert "uidMappings" not in linux


def test_docker_default_capabilities_no_new_privileges_and_masks() -> None:
    runtime_spec = build_runtime_spec(make_spec(id_range=IdRange(300_000)), ROOTFS, "/x")
    process, linux = runtime_spec["process"], runtime_spec["linux"]

    assert len(DEFAULT_CAPABILITIES) == 14 and "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES
    assert process["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert process["noNewPrivileges"] is True
    assert "/proc/interrupts" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]


def test_a_sysfs_mounted_by_the_driver_is_bound_read_only_on_sys() -> None:
    mounts = build_runtime_spec(make_spec(), ROOTFS, "/x", sysfs_source=Path("/c/sys"))["mounts"]
    [sys_mount] = [m for m in mounts if m["destination"] == "/sys"]

    assert sys_mount["type"] == "bind" and sys_mount["source"] == "/c/sys"
    assert {"ro", "nosuid", "noexec", "nodev"} <= set(sys_mount["options"])


def test_a_read_only_root_keeps_a_writable_tmp() -> None:
    runtime_spec = build_runtime_spec(make_spec(readonly_root=True), ROOTFS, "/x")
    tmp = [m for m in runtime_spec["mounts"] if m["destination"] == "/tmp"]

    assert runtime_spec["root"]["readonly"] is True
    assert tmp and tmp[0]["type"] == "tmpfs" and "mode=1777" in tmp[0]["options"]
    writable = build_runtime_spec(make_spec(), ROOTFS, "/x")
    assert writable["root"]["readonly"] is False
    assert not [m for m in writable["mounts"] if m["destination"] == "/tmp"]
