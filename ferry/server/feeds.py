"""What the long polls answer, computed once per store version and shared.

Every machine write wakes every long poll of the control plane: each host's
mesh and ``.internal`` feeds, each edge's routes, mesh and gateway records.
Computed per poller, that is a dozen store reads and serialisations per write,
all in threads fighting the event loop for the GIL while the one poll that
matters — the host agent that must start the machine — waits its turn (it cost
machine starts 40 to 50 ms). So a feed here is computed at most once per version
of what it is derived from, whoever asks first, and the others get that copy.

A feed's own version moves only when its content does (``Feed.version`` is the
source version at which the content last changed): the mesh does not change
when a machine merely starts, so the nodes long-polling it are not answered
and do not re-read it. Source versions come from the store's persistent
counters, so a feed's version never goes back, across control-plane restarts
included. Thread-safe; ``current`` blocks (call it in a thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Feed", "FeedState", "KeyedFeeds", "Memo", "NotifiedVersion"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class NotifiedVersion:
    """A store version, read again only when the change notifier moved (or the last
    read is ``max_age`` seconds old).

    Every write that a feed follows notifies after it commits, so a version read
    after the last notification is still the store's; the age bound covers a write
    that forgot to notify. Each poll of each feed asks for the version on every
    wake-up: this turns a dozen store reads per write into one.
    """

    def __init__(
        self,
        read: Callable[[], int],
        generation: Callable[[], int],
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._generation = generation
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[int, float, int] | None = None  # generation, read at, version

    def __call__(self) -> int:
        generation, now = self._generation(), self._clock()
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == generation and now - cached[1] < self._max_age:
                return cached[2]
            version = self._read()  # after the generation: a later write moves it again
            self._cached = (generation, now, version)
            return version


@dataclass(frozen=True)
class FeedState(Generic[T]):
    """A feed's content, and the version a poller compares with its ``since``."""

    version: int
    value: T


class Memo(Generic[T]):
    """``compute(version)``, recomputed only when ``source_version()`` moved."""

    def __init__(self, source_version: Callable[[], int], compute: Callable[[int], T]) -> None:
        self._source_version = source_version
        self._compute = compute
        self._lock = threading.Lock()
        self._cached: tuple[int, T] | None = None

    def current(self) -> tuple[int, T]:
        """(source version, value), the value computed after that version was read."""
        source = self._source_version()
        with self._lock:
            if self._cached is None or self._cached[0] != source:
                # read before computing: a write landing meanwhile moves the source
                # again, so the next caller recomputes; nothing stale is kept
                self._cached = (source, self._compute(source))
            return self._cached


class Feed(Generic[T]):
    """A value derived from the store whose version moves only with its content.

    ``fingerprint(value)`` must be equal for values a poller cannot tell apart
    (for example the encoded body without its version field).
    """

    def __init__(
        self,
        source_version: Callable[[], int],
        compute: Callable[[], T],
        fingerprint: Callable[[T], object],
    ) -> None:
        self._source_version = source_version
        self._compute = compute
        self._fingerprint = fingerprint
        self._lock = threading.Lock()
        self._source = -1
        self._print: object = None
        self._state: FeedState[T] | None = None

    def current(self) -> FeedState[T]:
        """The content for the store as it is now (computed once per source version)."""
        source = self._source_version()
        with self._lock:
            if self._state is not None and source == self._source:
                return self._state
            value = self._compute()
            mark = self._fingerprint(value)
            if self._state is None or mark != self._print:
                self._state = FeedState(source, value)
            else:  # same content: keep the version pollers already hold, with the new copy
                self._state = FeedState(self._state.version, value)
            self._source, self._print = source, mark
            return self._state


class KeyedFeeds(Generic[K, T]):
    """One ``Feed`` per key (a host, a region), made on first use."""

    def __init__(
        self,
        source_version: Callable[[], int],
        compute: Callable[[K], T],
        fingerprint: Callable[[T], object],
    ) -> None:
        def make(key: K) -> Feed[T]:
            return Feed(source_version, lambda: compute(key), fingerprint)

        self._make = make
        self._lock = threading.Lock()
        self._feeds: dict[K, Feed[T]] = {}

    def current(self, key: K) -> FeedState[T]:
        with self._lock:
            feed = self._feeds.get(key)
            if feed is None:
                feed = self._feeds[key] = self._make(key)
        return feed.current()
