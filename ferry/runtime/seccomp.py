"""The system calls a machine may make: the containers project's default seccomp profile.

Ferry does not write its own list. Debian's ``golang-github-containers-common``
(a dependency of buildah) ships the profile podman and buildah use,
``/usr/share/containers/seccomp.json`` — Docker's default, kept up to date by
that project: an allowlist (anything else fails with ENOSYS), with rules that
apply only with a capability, on an architecture or from a kernel version.

``runtime_seccomp`` turns that file's format into the OCI runtime spec's
``linux.seccomp`` for a container with the given capabilities on this host
(pure); ``load_profile`` reads the file (the adapter).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ferry.errors import RuntimeFailure

__all__ = ["DEFAULT_PROFILE", "go_arch", "load_profile", "runtime_seccomp"]

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")

# uname's machine name -> Go's GOARCH, the names the profile's rules use.
_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i686": "386",
    "i386": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# GOARCH -> the libseccomp architecture of the profile's archMap.
_SCMP_ARCH = {
    "amd64": "SCMP_ARCH_X86_64",
    "386": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
}
# The profile names some arches for rules by other spellings.
_ALIASES = {"386": {"386", "x86"}, "amd64": {"amd64"}, "arm64": {"arm64"}}


def go_arch(machine: str | None = None) -> str:
    """This host's architecture as Go names it (``amd64``, ``arm64`` …)."""
    name = machine or platform.machine()
    return _GO_ARCH.get(name, name)


def _kernel(version: str) -> tuple[int, int]:
    parts = version.split("-")[0].split(".")
    major, minor = [*(int(p) for p in parts[:2] if p.isdigit()), 0, 0][:2]
    return major, minor


def _applies(
    rule: Mapping[str, Any], caps: frozenset[str], arch: str, kernel: tuple[int, int]
) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    names = _ALIASES.get(arch, {arch})
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("arches") and not names & set(includes["arches"]):
        return False
    if includes.get("minKernel") and kernel < _kernel(str(includes["minKernel"])):
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:
        return False
    return not (excludes.get("arches") and names & set(excludes["arches"]))


def runtime_seccomp(
    profile: Mapping[str, Any],
    capabilities: Iterable[str],
    *,
    arch: str,
    kernel_release: str,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` of ``profile`` for a container holding ``capabilities``.

    ``arch``: Go's name of the host architecture (``go_arch()``);
    ``kernel_release``: ``uname -r``. Raises ``RuntimeFailure`` when the
    profile is not of the containers format (no ``defaultAction``/``syscalls``).
    """
    if "defaultAction" not in profile or not isinstance(profile.get("syscalls"), list):
        raise RuntimeFailure("the seccomp profile has no defaultAction or syscalls list")
    caps = frozenset(capabilities)
    kernel = _kernel(kernel_release)
    scmp = _SCMP_ARCH.get(arch)
    architectures: list[str] = []
    for entry in profile.get("archMap") or []:
        if scmp is not None and entry.get("architecture") == scmp:
            architectures = [scmp, *entry.get("subArchitectures", [])]
    syscalls = []
    for rule in profile["syscalls"]:
        if not _applies(rule, caps, arch, kernel):
            continue
        out: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                for a in rule["args"]
            ]
        syscalls.append(out)
    seccomp: dict[str, Any] = {"defaultAction": profile["defaultAction"], "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if architectures:
        seccomp["architectures"] = architectures
    return seccomp


def load_profile(path: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """The profile file's JSON; ``RuntimeFailure`` naming the file when unreadable."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(
            f"cannot read the seccomp profile {path}: {exc}",
            hint="install golang-github-containers-common (make up / make test do)",
        ) from exc
    if not isinstance(loaded, dict):
        raise RuntimeFailure(f"the seccomp profile {path} is not a JSON object")
    return loaded
