"""`ferry postgres image`: build once (cached), push, print the reference by digest."""

from __future__ import annotations

from pathlib import Path

from ferry.postgres import oci_layout
from ferry.postgres.image import ensure_image

from ..postgres.test_image_cache import FakeTools
from .cli_fakes import DIGEST, REGISTRY, FakeApi, RecordingTools, invoke


def seeded_cache(tmp_path: Path) -> Path:
    """A cache holding a base layer, as a first (root) build leaves it."""
    cache = tmp_path / "cache"
    ensure_image(cache, runner=FakeTools(), preflight=lambda: None)
    return cache


def test_image_pushes_the_cached_image_and_prints_it_by_digest(tmp_path: Path) -> None:
    cache = seeded_cache(tmp_path)
    api, tools = FakeApi(), RecordingTools()

    result = invoke(api, ["postgres", "image", "--cache-dir", str(cache)], tools=tools)

    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"{REGISTRY}/ferry-postgres@{DIGEST}"
    assert "from the cache" in result.output
    assert [command[:2] for command in tools.commands] == [["skopeo", "copy"]]


def test_image_without_push_names_the_local_layout_and_asks_no_api(tmp_path: Path) -> None:
    cache = seeded_cache(tmp_path)
    api, tools = FakeApi(), RecordingTools()

    result = invoke(api, ["postgres", "image", "--no-push", "--cache-dir", str(cache)], tools=tools)

    assert result.exit_code == 0, result.output
    ((tag, digest),) = oci_layout.read_tags(cache / "layout").items()
    assert result.output.strip().splitlines()[-1] == f"oci:{cache / 'layout'}:{tag}@{digest}"
    assert api.requests == [] and tools.commands == []
