"""`ferry postgres image`: build once (cached), push, print the reference by digest;
`ferry postgres follow`: the [postgres] policy and what the follow loop did."""

from __future__ import annotations

import json
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


POLICY = {
    "database": "pgdb",
    "replicas": "follow",
    "min_replicas": 1,
    "scale_out_after": 120.0,
    "scale_in_after": 600.0,
}
SEEN = {
    "checked_at": "2026-12-04T04:00:00Z",
    "last_reason": "web has run in sin for 121 s: a replica there",
    "app_running_since": {"sin": "2026-12-04T03:58:00Z"},
    "actions": [
        {
            "at": "2026-12-04T04:00:00Z",
            "kind": "add",
            "region": "sin",
            "machine_id": "m-sin",
            "reason": "the app ran there for the window",
            "result": "ok",
        }
    ],
}


def test_follow_shows_the_policy_and_the_replicas_added() -> None:
    api = FakeApi()
    api.follow["web"], api.follow_seen = POLICY, SEEN

    result = invoke(api, ["postgres", "follow", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert "web uses pgdb: replicas follow, at least 1, scale out after 120 s" in result.output
    assert "a replica there" in result.output
    assert "sin since 2026-12-04T03:58:00Z" in result.output
    row = next(line for line in result.output.splitlines() if "m-sin" in line)
    assert "add" in row and "sin" in row and "ok" in row


def test_follow_json_is_the_apis_answer_and_no_policy_says_so() -> None:
    api = FakeApi()
    api.follow["web"], api.follow_seen = POLICY, SEEN

    shown = json.loads(invoke(api, ["postgres", "follow", "-a", "web", "--json"]).output)
    bare = invoke(api, ["postgres", "follow", "-a", "other"])

    assert shown["policy"] == POLICY and shown["actions"] == SEEN["actions"]
    assert bare.exit_code == 0 and "other has no [postgres] section" in bare.output
