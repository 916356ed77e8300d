"""Which argv enters a container: plain ``runc exec``, or (a user namespace runc made and
a network namespace the host made) ``nsenter --net`` + runc on a copy of its state that
leaves the network namespace out."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from ferry.runtime.runc_enter import enter_argv, netns_to_inherit, state_without_netns


def runc_state(*namespaces: tuple[str, str]) -> dict[str, Any]:
    """A runc ``state.json`` (the parts that matter here) of a container with pid 42."""
    return {
        "id": "m-1",
        "init_process_pid": 42,
        "config": {
            "namespaces": [{"type": kind, "path": path} for kind, path in namespaces],
            "hostname": "m-1",
        },
        "cgroup_paths": {"memory": "/sys/fs/cgroup/memory/ferry/m-1"},
        "namespace_paths": {kind: f"/proc/42/ns/{kind[3:].lower()}" for kind, _ in namespaces},
    }


USERNS_HOST_NETNS = runc_state(
    ("NEWUSER", ""), ("NEWPID", ""), ("NEWNS", ""), ("NEWNET", "/run/netns/vm-m-1")
)


def test_a_user_namespace_with_a_host_made_network_namespace_inherits_the_netns() -> None:
    assert netns_to_inherit(USERNS_HOST_NETNS) == "/proc/42/ns/net"


def test_other_containers_are_entered_by_plain_runc_exec() -> None:
    runc_made_netns = runc_state(("NEWUSER", ""), ("NEWPID", ""), ("NEWNET", ""))
    no_userns = runc_state(("NEWPID", ""), ("NEWNET", "/run/netns/vm-m-1"))
    joined_userns = runc_state(("NEWUSER", "/proc/7/ns/user"), ("NEWNET", "/run/netns/x"))
    for state in (runc_made_netns, no_userns, joined_userns, {}, {"config": "?"}):
        assert netns_to_inherit(state) is None, state


def test_the_copy_leaves_out_only_the_network_namespace() -> None:
    view = state_without_netns(USERNS_HOST_NETNS)
    assert [entry["type"] for entry in view["config"]["namespaces"]] == [
        "NEWUSER",
        "NEWPID",
        "NEWNS",
    ]
    assert "NEWNET" not in view["namespace_paths"]
    assert view["namespace_paths"]["NEWUSER"] == "/proc/42/ns/user"
    assert view["cgroup_paths"] == USERNS_HOST_NETNS["cgroup_paths"]  # its cgroup is joined
    assert view["config"]["hostname"] == "m-1"
    assert len(USERNS_HOST_NETNS["config"]["namespaces"]) == 4  # the original is untouched


def test_enter_argv_writes_a_private_view_for_runc(tmp_path: Path) -> None:
    root, scratch = tmp_path / "runc", tmp_path / "scratch"
    (root / "m-1").mkdir(parents=True)
    (root / "m-1" / "state.json").write_text(json.dumps(USERNS_HOST_NETNS))
    scratch.mkdir()

    argv = enter_argv("runc", root, "m-1", scratch)

    view = scratch / "runc-view"
    assert argv == ["nsenter", "--net=/proc/42/ns/net", "--", "runc", "--root", str(view), "exec"]
    written = json.loads((view / "m-1" / "state.json").read_text())
    assert written == state_without_netns(USERNS_HOST_NETNS)
    assert stat.S_IMODE((view / "m-1").stat().st_mode) == 0o700
    assert stat.S_IMODE((view / "m-1" / "state.json").stat().st_mode) == 0o600
    # runc's own state is left as it was
    assert json.loads((root / "m-1" / "state.json").read_text()) == USERNS_HOST_NETNS


def test_enter_argv_is_plain_runc_exec_otherwise(tmp_path: Path) -> None:
    root, scratch = tmp_path / "runc", tmp_path / "scratch"
    scratch.mkdir()
    plain = ["runc", "--root", str(root), "exec"]
    assert enter_argv("runc", root, "m-1", scratch) == plain  # no state: runc says why
    (root / "m-1").mkdir(parents=True)
    (root / "m-1" / "state.json").write_text("{not json")
    assert enter_argv("runc", root, "m-1", scratch) == plain
    (root / "m-1" / "state.json").write_text(json.dumps(runc_state(("NEWNET", ""))))
    assert enter_argv("runc", root, "m-1", scratch) == plain
    assert list(scratch.iterdir()) == []
