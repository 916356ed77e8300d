"""Moving a volume image between hosts: a sparse file as a stream of data extents.

The stream is a series of frames ``offset (8 bytes) | length (8 bytes) | data``
(big-endian) holding only the file's data extents (found with ``SEEK_DATA``/
``SEEK_HOLE``), ended by a frame of length 0 whose offset is the file's size.
A 1 GB image holding 30 MB of data travels as about 30 MB, and is written
back as a sparse file of the same size. Used by ``volumes fork`` to another
region: the source host's agent sends a snapshot to the control plane, the
target host's agent fetches it (``ferry.agent.volume_loop``).
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from ferry.errors import RuntimeFailure

__all__ = ["read_frames", "write_frames"]

_HEADER = struct.Struct(">QQ")
_CHUNK = 1 << 20


def read_frames(path: Path) -> Iterator[bytes]:
    """The file at ``path`` as frames (each yielded piece is a whole frame). Blocking."""
    with open(path, "rb") as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            while start < end:
                length = min(_CHUNK, end - start)
                data = os.pread(fd, length, start)
                if not data:
                    break
                yield _HEADER.pack(start, len(data)) + data
                start += len(data)
            position = end
        yield _HEADER.pack(size, 0)


def write_frames(pieces: Iterable[bytes], path: Path) -> int:
    """Write a frame stream (cut anywhere into ``pieces``) to ``path`` as a sparse file;
    returns its size. Raises ``RuntimeFailure`` if the stream ends before its last
    frame (nothing is left at ``path`` then)."""
    buffer = bytearray()
    done: int | None = None
    try:
        with open(path, "wb") as handle:
            for piece in pieces:
                buffer += piece
                while len(buffer) >= _HEADER.size:
                    offset, length = _HEADER.unpack_from(buffer)
                    if length == 0:
                        handle.truncate(offset)
                        done = offset
                        break
                    if len(buffer) < _HEADER.size + length:
                        break
                    handle.seek(offset)
                    handle.write(buffer[_HEADER.size : _HEADER.size + length])
                    del buffer[: _HEADER.size + length]
                if done is not None:
                    break
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if done is None:
        path.unlink(missing_ok=True)
        raise RuntimeFailure(f"the copy of {path.name} ended before its last frame")
    return done
