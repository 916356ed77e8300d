"""The edge's ``[[statics]]`` decisions: prefix, path, headers, 304, and the image copy."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ferry.model import Machine
from ferry.model.machine_statics import StaticConfig
from ferry.proxy.routes import routes_from_machines
from ferry.proxy.static_cache import StaticCache, extract_subtree
from ferry.proxy.static_rules import (
    CACHE_CONTROL,
    CopyMissing,
    StaticFile,
    Traversal,
    content_type,
    find_file,
    header_value,
    match_prefix,
    not_modified,
    request_path,
    response_headers,
    split_path,
)

DIGEST = "sha256:" + "b" * 64
ASSETS = StaticConfig(guest_path="/app/public", url_prefix="/static")
SITE = StaticConfig(guest_path="/app/site", url_prefix="/", index_document="index.html")
DEEP = StaticConfig(guest_path="/app/img", url_prefix="/static/img/")


def test_the_longest_prefix_wins_on_whole_segments() -> None:
    statics = (SITE, ASSETS, DEEP)

    assert match_prefix(statics, b"/static/a.css") == (ASSETS, b"/a.css")
    assert match_prefix(statics, b"/static/img/x.png") == (DEEP, b"x.png")
    assert match_prefix(statics, b"/static") == (ASSETS, b"")
    assert match_prefix(statics, b"/statics.css") == (SITE, b"statics.css")
    assert match_prefix((ASSETS,), b"/statics.css") is None
    assert match_prefix((ASSETS,), b"/api/static") is None


def test_request_path_drops_the_query() -> None:
    assert request_path(b"GET /static/a.css?v=3 HTTP/1.1\r\nHost: x\r\n\r\n") == b"/static/a.css"


@pytest.mark.parametrize(
    "rest", [b"/../etc/passwd", b"a/%2e%2e/%2E%2E/b", b"..", b"a/..%2f..%2fsecret"]
)
def test_traversal_is_refused(rest: bytes) -> None:
    with pytest.raises(Traversal):
        split_path(rest)


def test_paths_are_decoded_and_normalised() -> None:
    assert split_path(b"/css//site%20main.css") == ("css", "site main.css")
    assert split_path(b"./a/./b") == ("a", "b")
    assert split_path(b"") == ()
    assert split_path(b"a%00b") is None
    assert split_path(b"a%5cb") is None
    assert split_path(b"%ff") is None


def test_find_file_serves_files_and_index_documents_only(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "a.css").write_text("body{}")

    found = find_file(tmp_path, ("a.css",), None)
    assert found is not None and found.relative == "a.css" and found.body == b"body{}"
    index = find_file(tmp_path, ("docs",), "index.html")
    assert index is not None and index.relative == "docs/index.html"
    assert find_file(tmp_path, (), "index.html") is None  # no index at the top
    assert find_file(tmp_path, ("docs",), None) is None
    assert find_file(tmp_path, ("a.css", "x"), None) is None
    assert find_file(tmp_path, ("missing.js",), None) is None
    with pytest.raises(CopyMissing):  # deleted under the edge: fetched again
        find_file(tmp_path / "pruned", ("a.css",), None)


def test_headers_of_a_file_and_of_a_304() -> None:
    found = StaticFile(Path("/x"), "css/site.css", 6, 1_700_000_000.0)

    full = dict(response_headers(DIGEST, found, not_modified_=False))
    short = dict(response_headers(DIGEST, found, not_modified_=True))

    assert full[b"Content-Type"] == b"text/css; charset=utf-8"
    assert full[b"Content-Length"] == b"6"
    assert full[b"Cache-Control"] == CACHE_CONTROL == b"public, max-age=3600"
    assert full[b"Last-Modified"] == b"Tue, 14 Nov 2023 22:13:20 GMT"
    assert full[b"ETag"].startswith(b'"') and full[b"ETag"] == short[b"ETag"]
    assert b"Content-Length" not in short and b"Content-Type" not in short
    other = dict(response_headers("sha256:" + "c" * 64, found, not_modified_=False))
    assert other[b"ETag"] != full[b"ETag"]  # a new image is a new ETag


def test_unknown_extensions_are_octet_streams() -> None:
    found = StaticFile(Path("/x"), "data.blob", 1, 0.0)
    assert dict(response_headers(DIGEST, found, not_modified_=False))[b"Content-Type"] == (
        b"application/octet-stream"
    )


def test_304_decisions() -> None:
    tag = b'"abc"'
    mtime = 1_700_000_000.0

    assert not_modified(b'"abc"', None, tag, mtime)
    assert not_modified(b'"x", W/"abc"', None, tag, mtime)
    assert not_modified(b"*", None, tag, mtime)
    assert not not_modified(b'"x"', b"Tue, 14 Nov 2023 22:13:20 GMT", tag, mtime)
    assert not_modified(None, b"Tue, 14 Nov 2023 22:13:20 GMT", tag, mtime)
    assert not not_modified(None, b"Tue, 14 Nov 2023 22:13:19 GMT", tag, mtime)
    assert not not_modified(None, b"yesterday", tag, mtime)
    assert not not_modified(None, None, tag, mtime)


def _layer(
    path: Path, members: dict[str, bytes | None], *, links: dict[str, str] | None = None
) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_extract_keeps_only_the_subtree_and_applies_whiteouts(tmp_path: Path) -> None:
    lower = _layer(
        tmp_path / "1.tar.gz",
        {
            "app/": None,
            "app/public/": None,
            "app/public/a.css": b"old",
            "app/public/gone.js": b"x",
            "app/public/old/": None,
            "app/public/old/x.txt": b"x",
            "app/secret.key": b"k",
            "etc/passwd": b"root",
        },
        links={"app/public/passwd": "/etc/passwd"},
    )
    upper = _layer(
        tmp_path / "2.tar.gz",
        {
            "app/public/a.css": b"new",
            "app/public/.wh.gone.js": b"",
            "app/public/old/.wh..wh..opq": b"",
            "app/public/old/y.txt": b"y",
            "app/public/../../escape": b"no",
        },
    )
    dest = tmp_path / "copy"

    count = extract_subtree([lower, upper], "/app/public", dest)

    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["a.css", "old/y.txt"] and count == 2
    assert (dest / "a.css").read_bytes() == b"new"
    assert (dest / "a.css").stat().st_mtime == 1_700_000_000
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert not (tmp_path / "escape").exists()


def test_a_whiteout_of_an_ancestor_empties_the_copy(tmp_path: Path) -> None:
    lower = _layer(tmp_path / "1.tar.gz", {"app/public/a.css": b"a"})
    upper = _layer(tmp_path / "2.tar.gz", {".wh.app": b""})

    assert extract_subtree([lower, upper], "/app/public", tmp_path / "copy") == 0


def _machine(mid: str, created: int, state: str, statics: list[dict[str, str]]) -> Machine:
    return Machine.model_validate(
        {
            "id": mid,
            "name": mid,
            "app_name": "web",
            "state": state,
            "desired_state": "started" if state == "started" else "stopped",
            "region": "ams",
            "instance_id": mid,
            "private_ip": "fdaa:0:1:0:1:0:1:2",
            "host_ip": "10.0.0.2",
            "config": {"image": f"reg/web@sha256:{mid * 64}"[:84], "statics": statics},
            "host_id": "h",
            "created_at": datetime.fromtimestamp(created, UTC),
            "updated_at": datetime.fromtimestamp(created, UTC),
        }
    )


def test_the_table_carries_the_newest_started_machines_statics() -> None:
    static = {"guest_path": "/p", "url_prefix": "/"}
    old = _machine("a", 1, "started", [static])
    new = _machine("c", 2, "started", [{**static, "url_prefix": "/s/"}])
    newest_stopped = _machine("d", 3, "stopped", [])

    table = routes_from_machines(7, [old, new, newest_stopped])

    site = table.statics["web"]
    assert site.digest == "sha256:" + "c" * 64 and site.image == new.config.image
    assert [s.url_prefix for s in site.statics] == ["/s/"]
    assert routes_from_machines(7, [newest_stopped]).statics == {}


def test_the_cache_cleans_up_after_a_crash_and_keeps_what_is_in_use(tmp_path: Path) -> None:
    (tmp_path / ".work-dead").mkdir()  # a fetch interrupted by a crash
    cache = StaticCache(tmp_path)
    assert not (tmp_path / ".work-dead").exists()

    kept = cache.path(DIGEST, "/app/public")
    gone = cache.path("sha256:" + "c" * 64, "/app/public")
    for copy in (kept, gone):
        copy.mkdir(parents=True)
    # On disk already: no registry is asked (this one does not exist).
    assert cache.ensure("127.0.0.1:1/web@" + DIGEST, DIGEST, "/app/public") == kept

    assert cache.prune([DIGEST]) == ["c" * 64]
    assert kept.is_dir() and not gone.parent.exists()


def test_an_opaque_top_directory_empties_the_copy(tmp_path: Path) -> None:
    lower = _layer(tmp_path / "1.tar.gz", {"app/public/a.css": b"a"})
    upper = _layer(tmp_path / "2.tar.gz", {".wh..wh..opq": b"", "app/public/b.css": b"b"})

    assert extract_subtree([lower, upper], "/app/public", tmp_path / "copy") == 1
    assert (tmp_path / "copy" / "b.css").read_bytes() == b"b"


def test_request_headers_are_found_by_name() -> None:
    head = b'GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match:  "a" \r\n\r\n'

    assert header_value(head, b"if-none-match") == b'"a"'
    assert header_value(head, b"if-modified-since") is None
    assert content_type("app.js") == b"text/javascript; charset=utf-8"
    assert content_type("logo.png") == b"image/png"
