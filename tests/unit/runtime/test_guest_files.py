"""config.files never escape the machine's root filesystem, whatever symlinks the image has."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.guest_files import write_guest_files


def test_files_and_their_directories_are_created(tmp_path: Path) -> None:
    write_guest_files(tmp_path, [("/etc/app/conf.ini", b"a=1"), ("/top", b"")])

    assert (tmp_path / "etc" / "app" / "conf.ini").read_bytes() == b"a=1"
    assert (tmp_path / "top").read_bytes() == b""
    assert oct((tmp_path / "etc" / "app" / "conf.ini").stat().st_mode & 0o777) == "0o644"


def test_a_symlinked_directory_in_the_image_is_refused_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to(outside)

    with pytest.raises(
        RuntimeFailure, match=r"config\.files /etc/x: a part of the path is a symlink"
    ):
        write_guest_files(rootfs, [("/etc/x", b"secret")])

    assert list(outside.iterdir()) == []


def test_a_symlinked_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "host-file"
    target.write_text("keep")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "motd").symlink_to(target)

    write_guest_files(rootfs, [("/motd", b"new")])

    assert target.read_text() == "keep"
    assert not (rootfs / "motd").is_symlink()
    assert (rootfs / "motd").read_bytes() == b"new"
