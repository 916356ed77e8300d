"""The image is built from the machine's own apt sources for bookworm, whatever their format."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import ValidationError
from ferry.postgres import apt_sources

DEB822 = """\
Types: deb deb-src
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates trixie
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Enabled: no

Types: deb
URIs: https://vendor.example/apt
Suites: nodistro
Components: main
"""


def test_deb822_entries_of_the_suite_become_deb_lines_with_their_keyring() -> None:
    keyring = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    assert apt_sources.from_deb822(DEB822, "bookworm") == [
        f"deb {keyring} http://mirror.example/debian bookworm main contrib",
        f"deb {keyring} http://mirror.example/debian bookworm-updates main contrib",
    ]


def test_one_line_entries_keep_their_options_and_drop_other_suites_and_sources() -> None:
    text = """\
deb [arch=amd64] http://mirror.example/debian bookworm main  # the main one
deb-src http://mirror.example/debian bookworm main
# deb http://mirror.example/debian bookworm-backports main
deb http://mirror.example/debian-security bookworm-security main
deb https://vendor.example/apt nodistro main
"""
    assert apt_sources.from_one_line(text, "bookworm") == [
        "deb [arch=amd64] http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian-security bookworm-security main",
    ]


def test_read_gathers_every_file_and_refuses_a_machine_without_the_suite(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://a.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text("deb http://x bookworm main\n")
    found = apt_sources.read("bookworm", tmp_path)
    assert found[0] == "deb http://a.example/debian bookworm main" and len(found) == 3
    with pytest.raises(ValidationError, match="no apt source for Debian buster"):
        apt_sources.read("buster", tmp_path)
