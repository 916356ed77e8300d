"""Who an image's process runs as: its ``User`` resolved against its own /etc files.

An OCI image config says ``User: "node"``, ``"1000"``, ``"app:staff"`` or
``"1000:50"``. Names mean nothing to the kernel: they are looked up in the
image's /etc/passwd and /etc/group, the way Docker and runc do it:

- empty: root (uid 0, gid 0, home ``/``);
- a name must be in /etc/passwd, else the machine fails with a message that
  says so (running it as root instead would be a silent privilege change);
- a numeric uid need not be: it then gets gid 0 and home ``/``;
- ``:group`` (a name from /etc/group, or a number) replaces the primary group;
- the groups of /etc/group that list the user by name are its supplementary
  groups.

``resolve_user`` is pure (file texts in, ``ExecUser`` out); ``read_image_user``
reads the two files from an unpacked image without following symlinks out
of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import RuntimeFailure

__all__ = ["ExecUser", "read_image_user", "require_mapped_user", "resolve_user"]

ROOT_HOME = "/"
_MAX_ETC_FILE_BYTES = 4 * 1024 * 1024  # a larger passwd file is not a passwd file


@dataclass(frozen=True)
class ExecUser:
    """The ids and home directory the process gets."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = ROOT_HOME


def _entries(text: str | None, fields: int) -> list[list[str]]:
    """Colon-separated entries with at least ``fields`` fields; comments and junk skipped."""
    if not text:
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(user: str, passwd: str | None, group: str | None) -> ExecUser:
    """``user`` (an image's ``User``) resolved with the image's /etc/passwd and /etc/group.

    ``passwd``/``group``: the files' texts, ``None`` when the image has none.
    Raises ``RuntimeFailure`` naming the user or group that cannot be found.
    """
    user_part, _, group_part = user.strip().partition(":")
    if not user_part and not group_part:
        return ExecUser(0, 0)
    accounts = _entries(passwd, 7)  # name:x:uid:gid:gecos:home:shell
    uid_number = _number(user_part) if user_part else 0
    account = next(
        (
            a
            for a in accounts
            if (a[0] == user_part if uid_number is None else _number(a[2]) == uid_number)
        ),
        None,
    )
    if account is None and uid_number is None:
        raise RuntimeFailure(
            f"the image runs as user {user_part!r}, which its /etc/passwd does not list",
            hint="add the user in the image (useradd/adduser) or set USER to a numeric uid",
        )
    if account is not None:
        uid = _number(account[2])
        gid = _number(account[3])
        if uid is None or gid is None:
            raise RuntimeFailure(f"the image's /etc/passwd entry of {account[0]!r} is malformed")
        name, home = account[0], account[5] or ROOT_HOME
    else:
        assert uid_number is not None
        uid, gid, name, home = uid_number, 0, None, ROOT_HOME
    groups = _entries(group, 4)  # name:x:gid:member,member
    if group_part:
        wanted = _number(group_part)
        if wanted is None:
            found = next((_number(g[2]) for g in groups if g[0] == group_part), None)
            if found is None:
                raise RuntimeFailure(
                    f"the image runs as group {group_part!r}, which its /etc/group does not list",
                    hint="add the group in the image or use a numeric gid",
                )
            wanted = found
        gid = wanted
    additional: list[int] = []
    if name is not None:
        for entry in groups:
            members = {m.strip() for m in entry[3].split(",")}
            number = _number(entry[2])
            if name in members and number is not None and number != gid:
                additional.append(number)
    return ExecUser(uid, gid, tuple(sorted(set(additional))), home)


def _read_inside(rootfs: Path, relative: str) -> str | None:
    """A file of the unpacked image, or None when absent; symlinks are not followed,
    so an image's /etc/passwd pointing at a host file reads as absent."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        directory = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        etc = os.open("etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
    except OSError:
        os.close(directory)
        return None
    os.close(directory)
    try:
        fd = os.open(relative, flags, dir_fd=etc)
    except OSError:
        return None
    finally:
        os.close(etc)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(_MAX_ETC_FILE_BYTES).decode("utf-8", errors="replace")


def read_image_user(rootfs: Path, user: str) -> ExecUser:
    """``resolve_user`` with the image's own /etc/passwd and /etc/group."""
    return resolve_user(user, _read_inside(rootfs, "passwd"), _read_inside(rootfs, "group"))


def require_mapped_user(user: ExecUser, size: int, named: str) -> None:
    """Raise ``RuntimeFailure`` if ``user`` (the image's ``User`` ``named``) has an id
    outside the ``0..size-1`` a machine's user namespace maps. Pure."""
    outside = [i for i in (user.uid, user.gid, *user.additional_gids) if not 0 <= i < size]
    if outside:
        raise RuntimeFailure(
            f"the image's user {named!r} has id {outside[0]}, but a machine has ids 0-{size - 1}",
            hint=f"give the image a USER (and groups) below {size}",
        )
