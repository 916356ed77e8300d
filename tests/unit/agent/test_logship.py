"""The log shipper uploads whole lines in order and frees only what it shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.agent import logship
from ferry.agent.logship import (
    MAX_BATCH_BYTES,
    MAX_LINE_CHARS,
    MAX_LINES_PER_UPLOAD,
    LogShipper,
    upload_lines,
)
from ferry.agent.reconcile import container_id
from ferry.errors import RuntimeFailure
from ferry.runtime.logfiles import release_shipped_prefix

from ...agent_fakes import RecordingSink, host_machine

MACHINE = host_machine()


class LogFilesDriver:
    """The log part of a ``Driver``: files under a directory; records each release."""

    def __init__(self, directory: Path, *, punch: bool = False, fail_release: bool = False):
        self.directory = directory
        self.punch = punch
        self.fail_release = fail_release
        self.releases: list[tuple[str, int]] = []

    def log_path(self, cid: str) -> Path:
        return self.directory / f"{cid}.log"

    def release_log(self, cid: str, upto: int) -> None:
        self.releases.append((cid, upto))
        if self.fail_release:
            raise RuntimeFailure("disk on fire")
        if self.punch:
            release_shipped_prefix(self.log_path(cid), upto)


def append(driver: LogFilesDriver, data: bytes) -> None:
    with driver.log_path(container_id(MACHINE)).open("ab") as log:
        log.write(data)


def test_whole_lines_are_shipped_and_then_released(tmp_path: Path) -> None:
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"one\ntwo\npart")

    shipper.ship([MACHINE], sink, "ams-1")
    append(driver, b"ial\n")
    shipper.ship([MACHINE], sink, "ams-1")

    assert sink.lines == ["one", "two", "partial"]
    cid = container_id(MACHINE)
    assert driver.releases == [(cid, 8), (cid, 16)]


def test_a_failed_upload_frees_nothing_and_is_retried(tmp_path: Path) -> None:
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"kept\n")
    sink.down = True

    shipper.ship([MACHINE], sink, "ams-1")
    sink.down = False
    shipper.ship([MACHINE], sink, "ams-1")

    assert sink.lines == ["kept"]
    assert driver.releases == [(container_id(MACHINE), 5)]


def test_a_line_longer_than_a_batch_is_shipped_in_pieces(tmp_path: Path) -> None:
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"x" * (MAX_BATCH_BYTES + 10) + b"\nnext\n")

    for _ in range(3):
        shipper.ship([MACHINE], sink, "ams-1")

    pieces = MAX_BATCH_BYTES // MAX_LINE_CHARS
    assert sink.lines == ["x" * MAX_LINE_CHARS] * pieces + ["x" * 10, "next"]


def test_a_failed_release_does_not_stop_shipping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver, sink = LogFilesDriver(tmp_path, fail_release=True), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"a\n")
    shipper.ship([MACHINE], sink, "ams-1")
    append(driver, b"b\n")
    shipper.ship([MACHINE], sink, "ams-1")

    assert sink.lines == ["a", "b"]
    assert "disk on fire" in caplog.text


def test_a_restarted_shipper_skips_the_freed_prefix_instead_of_shipping_nul_bytes(
    tmp_path: Path,
) -> None:
    driver, sink = LogFilesDriver(tmp_path, punch=True), RecordingSink()
    lines = [f"line {i:07d} " + "x" * 300 for i in range(12_000)]  # 3.7 MB
    append(driver, "".join(f"{line}\n" for line in lines).encode())
    first = LogShipper(driver)  # type: ignore[arg-type]
    for _ in range(2):  # 2 MiB shipped: the first MiB or so is punched
        first.ship([MACHINE], sink, "ams-1")
    path = driver.log_path(container_id(MACHINE))
    assert path.read_bytes()[:4096] == bytes(4096)

    again = RecordingSink()
    restarted = LogShipper(driver)  # type: ignore[arg-type]
    for _ in range(20):
        restarted.ship([MACHINE], again, "ams-1")

    assert all("\0" not in line for line in again.lines)
    assert again.lines[-1] == lines[-1]
    resumed_at = lines.index(again.lines[0])
    assert again.lines == lines[resumed_at:]
    assert resumed_at < len(sink.lines)  # nothing unshipped was skipped


def test_a_backlog_the_shipper_cannot_keep_up_with_is_skipped_with_a_line_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logship, "MAX_BACKLOG_BYTES", 64 * 1024)
    monkeypatch.setattr(logship, "KEEP_ON_SKIP", 1000)
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"".join(b"line %06d\n" % n for n in range(10_000)))  # 120 kB

    shipper.ship([MACHINE], sink, "ams-1")

    assert sink.lines[0].startswith("[ferry] ") and "skipped" in sink.lines[0]
    assert sink.lines[-1] == "line 009999"
    assert len(sink.lines) < 100  # only the last ~1000 bytes
    assert driver.releases[-1] == (container_id(MACHINE), 120_000)  # the skipped part is freed


def test_several_batches_go_per_call_until_caught_up(tmp_path: Path) -> None:
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    line = b"x" * 1023 + b"\n"
    append(driver, line * (2 * MAX_BATCH_BYTES // len(line) + 10))

    shipper.ship([MACHINE], sink, "ams-1")

    assert len(sink.lines) == 2 * MAX_BATCH_BYTES // len(line) + 10  # all of it, in one call


def test_the_rest_of_an_exited_containers_log_is_shipped_before_it_goes(tmp_path: Path) -> None:
    driver, sink = LogFilesDriver(tmp_path), RecordingSink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"migrating\n")
    shipper.ship([MACHINE], sink, "ams-1")
    append(driver, b"exit 3\n")  # written after the last periodic ship, just before exiting

    shipper.ship_rest(MACHINE.id, container_id(MACHINE), sink, "ams-1")

    assert sink.lines == ["migrating", "exit 3"]


def test_one_machine_whose_upload_breaks_oddly_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = MACHINE.model_copy(update={"id": "m2", "instance_id": "i2"})

    class PickySink(RecordingSink):
        def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> object:
            if machine_id == MACHINE.id:
                raise KeyError("a response the client did not expect")
            return super().upload_logs(host_id, machine_id, lines)

    driver, sink = LogFilesDriver(tmp_path), PickySink()
    shipper = LogShipper(driver)  # type: ignore[arg-type]
    append(driver, b"lost\n")
    driver.log_path(container_id(other)).write_bytes(b"from m2\n")
    shipper.ship([MACHINE, other], sink, "ams-1")
    shipper.ship([MACHINE, other], sink, "ams-1")

    assert sink.lines == ["from m2"]
    failures = [r for r in caplog.records if "shipping the log of m1 failed" in r.getMessage()]
    assert len(failures) == 1  # said once while the same error repeats


def test_uploads_stay_within_the_apis_limits() -> None:
    from ferry.server.schemas import MAX_LOG_LINE_CHARS, MAX_LOG_LINES_PER_UPLOAD

    assert MAX_LINES_PER_UPLOAD <= MAX_LOG_LINES_PER_UPLOAD
    assert MAX_LINE_CHARS <= MAX_LOG_LINE_CHARS
    many = b"".join(b"%d\n" % i for i in range(2500))
    lines, used = upload_lines(many, MAX_LINES_PER_UPLOAD)
    assert lines == [str(i) for i in range(MAX_LINES_PER_UPLOAD)]
    assert many[:used].count(b"\n") == MAX_LINES_PER_UPLOAD  # the rest waits for the next
    long_line, used = upload_lines(b"y" * (MAX_LINE_CHARS * 2 + 1) + b"\n", 3)
    assert [len(piece) for piece in long_line] == [MAX_LINE_CHARS, MAX_LINE_CHARS, 1]


def test_many_short_lines_ship_in_uploads_of_at_most_the_limit(tmp_path: Path) -> None:
    class CountingSink(RecordingSink):
        sizes: list[int] = []

        def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> object:
            self.sizes.append(len(lines))
            return super().upload_logs(host_id, machine_id, lines)

    driver, sink = LogFilesDriver(tmp_path), CountingSink()
    append(driver, b"".join(b"%d\n" % i for i in range(2500)))
    LogShipper(driver).ship([MACHINE], sink, "ams-1")  # type: ignore[arg-type]
    assert sink.sizes == [1000, 1000, 500]
    assert sink.lines == [str(i) for i in range(2500)]
