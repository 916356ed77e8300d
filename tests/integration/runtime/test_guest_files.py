"""config.files are in the machine's filesystem, with their content, before its process starts."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from ferry.runtime.driver import ContainerState, LocalImage
from ferry.runtime.guest_files import write_guest_files
from ferry.runtime.runc import RuncDriver

from .conftest import container_spec

pytestmark = pytest.mark.integration


def wait_exited(driver: RuncDriver, container_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while driver.inspect(container_id).state is ContainerState.RUNNING:
        assert time.monotonic() < deadline, "the container did not exit in time"
        time.sleep(0.01)


def test_files_are_written_before_the_process_starts(
    driver: RuncDriver, busybox_image: LocalImage
) -> None:
    spec = dataclasses.replace(
        container_spec(
            busybox_image,
            "cat /etc/app/app.conf; echo; cat /motd; echo; ls -l /etc/app/app.conf",
        ),
        files=(("/etc/app/app.conf", b"listen = 8080"), ("/motd", b"hello from files")),
    )

    driver.start(spec)
    wait_exited(driver, spec.container_id)

    log = driver.log_path(spec.container_id).read_text()
    assert "listen = 8080" in log
    assert "hello from files" in log
    assert "-rw-r--r--" in log
    # The shared image is untouched: the files live in this machine's own layer.
    assert not (busybox_image.rootfs / "motd").exists()


def test_a_file_replaces_the_images_own(driver: RuncDriver, busybox_image: LocalImage) -> None:
    spec = dataclasses.replace(
        container_spec(busybox_image, "/bin/sh /bin/arch"),
        files=(("/bin/arch", b"echo replaced-by-files\n"),),
    )

    driver.start(spec)
    wait_exited(driver, spec.container_id)

    assert "replaced-by-files" in driver.log_path(spec.container_id).read_text()
    assert b"replaced-by-files" not in (busybox_image.rootfs / "bin" / "arch").read_bytes()


def test_with_an_owner_files_and_the_directories_made_for_them_are_its(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()  # the image's: not made here, its owner untouched
    owner = (300_000, 300_000)

    write_guest_files(tmp_path, [("/etc/app/conf.ini", b"a=1")], owner)

    made = tmp_path / "etc" / "app"
    assert (made.stat().st_uid, made.stat().st_gid) == owner
    written = (made / "conf.ini").stat()
    assert (written.st_uid, written.st_gid) == owner
    assert (tmp_path / "etc").stat().st_uid == 0
