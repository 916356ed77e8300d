"""An image's ``User`` resolved against its own /etc/passwd and /etc/group, as Docker does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.image_user import ExecUser, read_image_user, require_mapped_user, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
node:x:1000:1000::/home/node:/bin/sh
broken line
app:x:1001:1001:app::/bin/sh
"""
GROUP = """\
root:x:0:
staff:x:50:node
docker:x:999:node,app
node:x:1000:
nogroup:x:65534:
"""


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", ExecUser(0, 0)),
        ("root", ExecUser(0, 0, (), "/root")),
        ("nobody", ExecUser(65534, 65534, (), "/nonexistent")),
        ("node", ExecUser(1000, 1000, (50, 999), "/home/node")),
        ("1000", ExecUser(1000, 1000, (50, 999), "/home/node")),  # a listed uid: its entry
        ("4242", ExecUser(4242, 0)),  # an unlisted uid: gid 0, home /
        ("node:staff", ExecUser(1000, 50, (999,), "/home/node")),
        ("node:7", ExecUser(1000, 7, (50, 999), "/home/node")),
        ("4242:4242", ExecUser(4242, 4242)),
        ("app", ExecUser(1001, 1001, (999,), "/")),  # empty home field: /
    ],
)
def test_users_resolve_like_docker(user: str, expected: ExecUser) -> None:
    assert resolve_user(user, PASSWD, GROUP) == expected


def test_an_unknown_name_fails_and_says_what_to_do() -> None:
    with pytest.raises(RuntimeFailure, match=r"'ghost'.*does not list") as caught:
        resolve_user("ghost", PASSWD, GROUP)
    assert "numeric uid" in (caught.value.hint or "")
    with pytest.raises(RuntimeFailure, match="'wheel'"):
        resolve_user("node:wheel", PASSWD, GROUP)
    with pytest.raises(RuntimeFailure, match="'node'"):
        resolve_user("node", None, None)  # an image without /etc/passwd


def test_the_files_are_read_from_the_image_and_symlinks_out_of_it_are_not_followed(
    tmp_path: Path,
) -> None:
    image = tmp_path / "rootfs"
    (image / "etc").mkdir(parents=True)
    (image / "etc" / "passwd").write_text(PASSWD)
    (image / "etc" / "group").write_text(GROUP)
    assert read_image_user(image, "node:staff") == ExecUser(1000, 50, (999,), "/home/node")

    host = tmp_path / "host-passwd"
    host.write_text("evil:x:0:0::/:/bin/sh\n")
    sneaky = tmp_path / "sneaky"
    (sneaky / "etc").mkdir(parents=True)
    os.symlink(host, sneaky / "etc" / "passwd")
    with pytest.raises(RuntimeFailure, match="'evil'"):
        read_image_user(sneaky, "evil")
    linked_etc = tmp_path / "linked"
    linked_etc.mkdir()
    os.symlink(image / "etc", linked_etc / "etc")
    with pytest.raises(RuntimeFailure, match="'node'"):
        read_image_user(linked_etc, "node")


def test_a_user_beyond_a_machines_ids_is_refused_naming_the_id() -> None:
    require_mapped_user(ExecUser(65_535, 0, (10,)), 65_536, "65535:0")

    with pytest.raises(RuntimeFailure, match="user 'app' has id 70000, but a machine has ids"):
        require_mapped_user(ExecUser(1000, 1000, (70_000,)), 65_536, "app")
