"""Feeds computed once per store version, whose version moves only with their content."""

from __future__ import annotations

import threading

from ferry.server.feeds import Feed, KeyedFeeds, Memo, NotifiedVersion


class Source:
    """A store version and content a test moves by hand; counts the computations."""

    def __init__(self) -> None:
        self.version = 10
        self.content = "a"
        self.computed = 0

    def compute(self) -> str:
        self.computed += 1
        return self.content


def test_a_feed_is_computed_once_per_source_version_whoever_asks() -> None:
    source = Source()
    feed = Feed(lambda: source.version, source.compute, fingerprint=lambda text: text)
    threads = [threading.Thread(target=feed.current) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert source.computed == 1
    source.version = 11
    assert feed.current().value == "a"
    assert source.computed == 2


def test_the_version_stays_while_the_content_does_and_moves_when_it_changes() -> None:
    source = Source()
    feed = Feed(lambda: source.version, source.compute, fingerprint=lambda text: text)
    assert feed.current().version == 10
    source.version = 12  # a write that does not change what this feed shows
    assert feed.current().version == 10
    source.version, source.content = 15, "b"
    state = feed.current()
    assert (state.version, state.value) == (15, "b")


def test_a_restarted_feed_starts_at_the_store_version_never_behind() -> None:
    source = Source()
    source.version = 40
    fresh = Feed(lambda: source.version, source.compute, fingerprint=lambda text: text)
    assert fresh.current().version == 40  # >= any version an earlier process gave out


def test_keyed_feeds_keep_a_version_per_key() -> None:
    source = Source()
    contents = {"h1": "x", "h2": "y"}
    feeds = KeyedFeeds(lambda: source.version, contents.__getitem__, lambda text: text)
    assert feeds.current("h1").version == feeds.current("h2").version == 10
    source.version, contents["h2"] = 11, "z"
    assert feeds.current("h1").version == 10
    assert feeds.current("h2").version == 11


def test_a_memo_recomputes_only_when_the_source_moves_and_passes_the_version() -> None:
    source = Source()
    seen: list[int] = []

    def double(version: int) -> int:
        seen.append(version)
        return version * 2

    memo = Memo(lambda: source.version, double)
    assert memo.current() == (10, 20)
    assert memo.current() == (10, 20)
    source.version = 11
    assert memo.current() == (11, 22)
    assert seen == [10, 11]


def test_a_notified_version_is_read_again_only_after_a_notification_or_when_old() -> None:
    reads = [0]
    store = {"version": 5}
    generation = [1]
    now = [100.0]

    def read() -> int:
        reads[0] += 1
        return store["version"]

    version = NotifiedVersion(read, lambda: generation[0], max_age=1.0, clock=lambda: now[0])
    assert version() == 5 and version() == 5 and reads[0] == 1
    store["version"] = 6  # committed; its notification follows
    generation[0] += 1
    assert version() == 6 and reads[0] == 2
    store["version"] = 7  # a write that never notifies is seen within max_age
    now[0] += 1.5
    assert version() == 7 and reads[0] == 3
