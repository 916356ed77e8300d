"""Log files give back the disk space of their shipped prefix, and only of that."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime import logfiles
from ferry.runtime.logfiles import (
    KEEP_TAIL_BYTES,
    PUNCH_THRESHOLD_BYTES,
    punch_range,
    release_shipped_prefix,
    resume_offset,
)

KIB = 1024
MIB = 1024 * KIB
BLOCK = 4096


# -- the pure decision ----------------------------------------------------------


def test_a_quiet_log_is_left_alone() -> None:
    shipped = KEEP_TAIL_BYTES + PUNCH_THRESHOLD_BYTES - 1
    assert punch_range(shipped, 0, block_size=BLOCK) is None


def test_the_first_punch_frees_all_but_the_kept_tail() -> None:
    shipped = KEEP_TAIL_BYTES + PUNCH_THRESHOLD_BYTES
    assert punch_range(shipped, 0, block_size=BLOCK) == (0, PUNCH_THRESHOLD_BYTES)


def test_the_end_is_rounded_down_to_a_block_so_no_kept_byte_is_zeroed() -> None:
    shipped = 5 * MIB + 123
    chosen = punch_range(shipped, 0, block_size=BLOCK)
    assert chosen is not None
    start, end = chosen
    assert start == 0 and end % BLOCK == 0
    assert shipped - KEEP_TAIL_BYTES - BLOCK < end <= shipped - KEEP_TAIL_BYTES


def test_a_later_punch_starts_where_the_hole_ends_and_waits_for_the_threshold() -> None:
    punched = 4 * MIB
    almost = punched + KEEP_TAIL_BYTES + PUNCH_THRESHOLD_BYTES - 1
    assert punch_range(almost, punched, block_size=BLOCK) is None
    assert punch_range(almost + 1, punched, block_size=BLOCK) == (punched, 5 * MIB)


def test_an_unaligned_hole_end_is_rounded_down() -> None:
    assert punch_range(10 * MIB, 3 * MIB + 10, block_size=BLOCK) == (
        3 * MIB,
        10 * MIB - KEEP_TAIL_BYTES,
    )


def test_nothing_when_the_hole_already_covers_the_shipped_prefix() -> None:
    assert punch_range(2 * MIB, 8 * MIB, block_size=BLOCK, threshold=0) is None
    assert punch_range(2 * MIB, 2 * MIB - KEEP_TAIL_BYTES, block_size=BLOCK, threshold=0) is None


def test_a_zero_threshold_still_punches_whole_blocks_only() -> None:
    shipped = KEEP_TAIL_BYTES + BLOCK - 1
    assert punch_range(shipped, 0, block_size=BLOCK, threshold=0) is None
    assert punch_range(shipped + 1, 0, block_size=BLOCK, threshold=0) == (0, BLOCK)


def test_the_range_never_reaches_the_kept_tail_for_any_input() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        block = rng.choice((512, 4096, 65536))
        keep = rng.randrange(0, 256 * KIB)
        threshold = rng.randrange(0, 4 * MIB)
        shipped = rng.randrange(0, 64 * MIB)
        punched = rng.randrange(0, 64 * MIB)
        chosen = punch_range(
            shipped, punched, block_size=block, keep_tail=keep, threshold=threshold
        )
        if chosen is None:
            continue
        start, end = chosen
        assert start % block == 0 and end % block == 0
        assert punched - block < start <= punched
        assert end <= shipped - keep
        assert end - start >= max(threshold, block)


# -- on a real file ---------------------------------------------------------------


def write_lines(path: Path, count: int, width: int = 100) -> list[bytes]:
    lines = [f"line {i:08d} ".encode().ljust(width - 1, b".") + b"\n" for i in range(count)]
    with path.open("ab") as log:
        log.write(b"".join(lines))
    return lines


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_release_frees_the_shipped_prefix_and_keeps_everything_after_it(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    lines = write_lines(path, 40_000)  # 4 MB
    content = path.read_bytes()
    shipped = 300 * 100 * 100  # 3 MB, a line boundary
    before = allocated(path)

    freed = release_shipped_prefix(path, shipped)

    assert freed > 0 and freed % BLOCK == 0
    assert allocated(path) <= before - freed + BLOCK
    assert os.stat(path).st_size == len(content)
    after = path.read_bytes()
    assert after[:freed] == bytes(freed)
    assert after[shipped - KEEP_TAIL_BYTES :] == content[shipped - KEEP_TAIL_BYTES :]
    assert after.endswith(lines[-1])


def test_release_is_idempotent_and_remembers_the_hole_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    write_lines(path, 40_000)
    assert release_shipped_prefix(path, 2 * MIB) > 0
    assert release_shipped_prefix(path, 2 * MIB) == 0
    assert release_shipped_prefix(path, 2 * MIB + PUNCH_THRESHOLD_BYTES) == PUNCH_THRESHOLD_BYTES


def test_release_of_a_missing_or_quiet_log_does_nothing(tmp_path: Path) -> None:
    assert release_shipped_prefix(tmp_path / "gone.log", 10 * MIB) == 0
    path = tmp_path / "stdout.log"
    write_lines(path, 100)
    assert release_shipped_prefix(path, 100 * 100) == 0


def test_without_hole_punching_it_does_nothing_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[tuple[int, int]] = []

    def unsupported(fd: int, offset: int, length: int) -> bool:
        attempts.append((offset, length))
        return False

    monkeypatch.setattr(logfiles, "punch_hole", unsupported)
    monkeypatch.setattr(logfiles, "_unpunchable_devices", set())
    path = tmp_path / "stdout.log"
    write_lines(path, 40_000)
    caplog.set_level(logging.DEBUG, logger=logfiles.__name__)

    assert release_shipped_prefix(path, 2 * MIB) == 0
    assert release_shipped_prefix(path, 3 * MIB) == 0

    assert len(attempts) == 1
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "cannot punch holes" in caplog.records[0].getMessage()
    assert path.read_bytes()[:100].startswith(b"line 00000000")


def test_a_reader_without_an_offset_starts_at_the_first_whole_line_after_the_hole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stdout.log"
    lines = write_lines(path, 40_000)
    with path.open("rb") as log:
        assert resume_offset(log.fileno()) == 0
    freed = release_shipped_prefix(path, 3 * MIB)
    with path.open("rb") as log:
        log.seek(5)
        offset = resume_offset(log.fileno())
        assert log.tell() == 5
    first_whole = (freed // 100 + 1) * 100  # the line the hole cut is skipped
    assert offset == first_whole
    assert path.read_bytes()[offset : offset + 100] == lines[first_whole // 100]


def test_a_log_that_cannot_be_opened_is_a_runtime_failure(tmp_path: Path) -> None:
    directory = tmp_path / "stdout.log"
    directory.mkdir()
    with pytest.raises(RuntimeFailure, match="could not open"):
        release_shipped_prefix(directory, 10 * MIB)
