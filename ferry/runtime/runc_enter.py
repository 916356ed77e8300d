"""How ``runc exec`` enters a machine: the argv that starts a command in its container.

Most containers are entered by plain ``runc exec``. One kind is not: a machine in a
user namespace of its own (runc made it, with the machine's uid mapping) whose
network namespace the host made beforehand (``/run/netns/…``, owned by the host's
user namespace). runc before the two-stage join of its PR #4492 (the fix of runc
issue #4390; Debian 12 ships runc 1.1.5) joins the user namespace first, and then
lacks the right to join a network namespace its new user namespace does not own:
``failed to setns into net namespace: Operation not permitted``.

The fix here keeps runc doing all of the work that makes the command no more
privileged than the machine's own process — its uid/gid in the mapping, the
capability sets of ``config.json``, ``no_new_privs``, the seccomp filter, rlimits,
the machine's cgroups, its env and cwd, the terminal in its ``/dev/pts`` — and
changes only where the network namespace comes from:

1. util-linux ``nsenter --net=/proc/<init>/ns/net`` (host root may join any network
   namespace) starts runc already inside the machine's network namespace;
2. runc is pointed (``--root``) at a private copy of the container's state file
   whose namespace list leaves the network namespace out, so runc joins the user,
   ipc, uts, pid and mount namespaces as always and the command inherits the
   network namespace it already is in.

The copy is made afresh for each command from runc's own ``state.json`` (the init
pid, cgroup paths and namespace paths of this moment) in a 0700 scratch directory
the caller removes; runc's real state is never written. Alternatives weighed: a
network namespace made inside the machine's user namespace changes every start
and the network namespace pool, and lets the machine's user namespace own its
network; ``nsenter --all`` + ``setpriv`` cannot load the seccomp filter, and the
join of the user namespace resets the capability bounding set, after which no
host tool can run in the machine's mount namespace to narrow it again (a busybox
image has no ``setpriv``) — the command would run with every capability of the
user namespace and no seccomp filter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["NSENTER", "enter_argv", "netns_to_inherit", "state_without_netns"]

NSENTER = "nsenter"
_NET = "NEWNET"
_USER = "NEWUSER"


def netns_to_inherit(state: dict[str, Any]) -> str | None:
    """The network namespace runc exec must be started in, from runc's ``state.json``,
    or ``None`` when plain ``runc exec`` enters the container. Pure.

    Only a container that runc gave a new user namespace (no ``path``) and that
    joined an existing network namespace (a ``path``) needs it: the answer is the
    container's own, ``namespace_paths[NEWNET]`` (``/proc/<init pid>/ns/net``).
    """
    config = state.get("config")
    paths = state.get("namespace_paths")
    if not isinstance(config, dict) or not isinstance(paths, dict):
        return None
    kinds = {
        str(entry.get("type")): str(entry.get("path") or "")
        for entry in config.get("namespaces") or []
        if isinstance(entry, dict)
    }
    if _USER not in kinds or kinds[_USER] or not kinds.get(_NET):
        return None
    inherited = paths.get(_NET)
    return inherited if isinstance(inherited, str) and inherited else None


def state_without_netns(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the network namespace left out of the namespaces runc joins
    (its config's list and ``namespace_paths``); everything else as it is. Pure."""
    config = dict(state["config"])
    config["namespaces"] = [
        entry
        for entry in config.get("namespaces") or []
        if not (isinstance(entry, dict) and entry.get("type") == _NET)
    ]
    paths = {kind: path for kind, path in state["namespace_paths"].items() if kind != _NET}
    return {**state, "config": config, "namespace_paths": paths}


def enter_argv(runc_binary: str, runc_root: Path, container_id: str, scratch: Path) -> list[str]:
    """The argv up to and including ``exec`` that enters ``container_id``; the caller
    appends runc exec's options, the id and the command.

    Plain ``runc --root ROOT exec`` unless the container needs its network namespace
    inherited (``netns_to_inherit``); then ``nsenter --net=… runc --root VIEW exec``
    with ``VIEW`` a copy of its state under ``scratch`` (a private directory that
    lives as long as the command). A state file that cannot be read leaves plain
    ``runc exec``, which then says what is wrong. Blocking (reads one small file).
    """
    plain = [runc_binary, "--root", str(runc_root), "exec"]
    try:
        loaded: Any = json.loads((runc_root / container_id / "state.json").read_text())
    except (OSError, ValueError):
        return plain
    if not isinstance(loaded, dict):
        return plain
    netns = netns_to_inherit(loaded)
    if netns is None:
        return plain
    view = scratch / "runc-view"
    (view / container_id).mkdir(parents=True, mode=0o700)
    descriptor = os.open(
        view / container_id / "state.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
    )
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state_without_netns(loaded), handle)
    return [NSENTER, f"--net={netns}", "--", runc_binary, "--root", str(view), "exec"]
