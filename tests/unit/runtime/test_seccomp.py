"""The containers project's seccomp profile turned into the OCI spec's ``linux.seccomp``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.seccomp import DEFAULT_PROFILE, go_arch, load_profile, runtime_seccomp

PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_CHROOT"]}, "excludes": {}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "includes": {}, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "comment": "x",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}  # fmt: skip


def names(seccomp: dict[str, Any], action: str) -> set[str]:
    return {n for rule in seccomp["syscalls"] if rule["action"] == action for n in rule["names"]}


def test_rules_follow_capabilities_architecture_and_kernel() -> None:
    amd = runtime_seccomp(PROFILE, ["CAP_SYS_CHROOT"], arch="amd64", kernel_release="6.1.0-18")
    assert amd["defaultAction"] == "SCMP_ACT_ERRNO" and amd["defaultErrnoRet"] == 38
    assert amd["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert names(amd, "SCMP_ACT_ALLOW") == {"read", "write", "arch_prctl", "chroot", "personality"}
    assert names(amd, "SCMP_ACT_ERRNO") == set()

    arm = runtime_seccomp(PROFILE, [], arch="arm64", kernel_release="6.5.0")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert names(arm, "SCMP_ACT_ALLOW") == {"read", "write", "new_call", "personality"}
    assert names(arm, "SCMP_ACT_ERRNO") == {"chroot"}  # without the capability: EPERM
    personality = next(r for r in arm["syscalls"] if r["names"] == ["personality"])
    assert personality["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    assert "comment" not in personality


def test_a_file_that_is_not_a_profile_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="no defaultAction"):
        runtime_seccomp({"syscalls": "all"}, [], arch="amd64", kernel_release="6.1")
    missing = tmp_path / "nope.json"
    with pytest.raises(RuntimeFailure, match=r"nope\.json") as caught:
        load_profile(missing)
    assert "containers-common" in (caught.value.hint or "")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(RuntimeFailure, match="not a JSON object"):
        load_profile(tmp_path / "list.json")


def test_the_installed_profile_keeps_ordinary_calls_and_denies_kernel_modules() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    caps = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]
    seccomp = runtime_seccomp(profile, caps, arch=go_arch(), kernel_release="6.1.0")
    allowed = names(seccomp, "SCMP_ACT_ALLOW")
    assert {"read", "write", "epoll_wait", "accept4", "clone", "execve"} <= allowed
    assert not {"init_module", "kexec_load", "bpf"} & allowed
    json.dumps(seccomp)  # the spec is JSON
