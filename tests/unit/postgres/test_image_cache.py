"""The Postgres image is built once per recipe and reused; failures say what to do."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.postgres import image as image_module
from ferry.postgres import oci_layout, recipe
from ferry.postgres.image import build_problem, ensure_image, publish_image

DIGEST = "sha256:" + "ab" * 32


class FakeTools:
    """mmdebstrap writes a tiny root filesystem tar; skopeo writes a digest file."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.fail_with = fail_with

    def run(self, args: Sequence[str]) -> str:
        self.commands.append(list(args))
        if args[0] == "mmdebstrap":
            if self.fail_with:
                raise RuntimeFailure(f"mmdebstrap failed (exit 1): {self.fail_with}")
            output = Path(args[args.index(recipe.SUITE) + 1])
            with tarfile.open(output, "w") as tar:
                info = tarfile.TarInfo("./etc/debian_version")
                info.size = 5
                tar.addfile(info, io.BytesIO(b"12.9\n"))
        if "--digestfile" in args:
            Path(args[args.index("--digestfile") + 1]).write_text(DIGEST)
        return ""

    def ran(self, tool: str) -> int:
        return sum(1 for command in self.commands if command[0] == tool)


def build(cache: Path, tools: FakeTools, **kwargs: bool) -> image_module.BuiltImage:
    return ensure_image(cache, runner=tools, preflight=lambda: None, **kwargs)


def test_a_second_call_builds_nothing_and_names_the_same_image(tmp_path: Path) -> None:
    tools = FakeTools()

    first = build(tmp_path, tools)
    second = build(tmp_path, tools)

    assert first.built_base and not second.built_base
    assert tools.ran("mmdebstrap") == 1
    assert (second.tag, second.digest) == (first.tag, first.digest)
    assert second.tag.startswith(recipe.base_key())


def test_a_changed_entrypoint_makes_a_new_image_on_the_cached_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = FakeTools()
    first = build(tmp_path, tools)
    files = recipe.ferry_files()
    files["usr/local/bin/ferry-postgres"] = (b"#!/bin/sh\necho changed\n", 0o755)
    monkeypatch.setattr(recipe, "ferry_files", lambda: files)

    second = build(tmp_path, tools)

    assert tools.ran("mmdebstrap") == 1
    assert second.tag != first.tag and not second.built_base
    assert oci_layout.read_tags(tmp_path / "layout") == {second.tag: second.digest}


def test_rebuild_builds_the_base_again(tmp_path: Path) -> None:
    tools = FakeTools()
    build(tmp_path, tools)

    again = build(tmp_path, tools, rebuild=True)

    assert again.built_base and tools.ran("mmdebstrap") == 2


def test_the_layout_holds_both_layers_with_matching_diff_ids(tmp_path: Path) -> None:
    built = build(tmp_path, FakeTools())

    layout = tmp_path / "layout"
    manifest = json.loads(oci_layout.blob_path(layout, built.digest).read_text())
    config = json.loads(oci_layout.blob_path(layout, manifest["config"]["digest"]).read_text())
    tars = [
        gzip.decompress(oci_layout.blob_path(layout, layer["digest"]).read_bytes())
        for layer in manifest["layers"]
    ]

    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/ferry-postgres"]
    with tarfile.open(fileobj=io.BytesIO(tars[1])) as ferry_layer:
        entry = ferry_layer.getmember("usr/local/bin/ferry-postgres")
        module = ferry_layer.getmember("usr/local/lib/ferry-postgres/ferry/postgres/entrypoint.py")
    assert entry.mode == 0o755 and (entry.uid, entry.gid) == (0, 0)
    assert module.size == len(Path(image_module.__file__).with_name("entrypoint.py").read_bytes())


def test_an_apt_failure_names_mmdebstrap_and_leaves_no_image(tmp_path: Path) -> None:
    tools = FakeTools(fail_with="E: Unable to locate package postgresql-15")

    with pytest.raises(RuntimeFailure) as raised:
        build(tmp_path, tools)

    assert "mmdebstrap could not build the Postgres base" in raised.value.message
    assert "Unable to locate package postgresql-15" in raised.value.message
    assert raised.value.hint is not None and "mirror" in raised.value.hint
    assert oci_layout.read_tags(tmp_path / "layout") == {}
    assert list(tmp_path.glob("base-*")) == []


def test_the_build_needs_root_and_mmdebstrap() -> None:
    not_root = build_problem(1000, "/usr/bin/mmdebstrap")
    missing = build_problem(0, None)

    assert not_root is not None and "needs root" in not_root.message
    assert missing is not None and "mmdebstrap is not installed" in missing.message
    assert missing.hint is not None and "install-deps.sh" in missing.hint
    assert build_problem(0, "/usr/bin/mmdebstrap") is None


def test_a_failed_preflight_stops_before_any_tool_runs(tmp_path: Path) -> None:
    tools = FakeTools()

    def refuse() -> None:
        raise RuntimeFailure("building the Postgres image needs root")

    with pytest.raises(RuntimeFailure, match="needs root"):
        ensure_image(tmp_path, runner=tools, preflight=refuse)
    assert tools.commands == []


def test_publish_copies_the_cached_image_and_pins_it_by_digest(tmp_path: Path) -> None:
    tools = FakeTools()
    built = build(tmp_path, tools)

    reference = publish_image(built, "10.77.0.1:5000", runner=tools)

    assert reference == f"10.77.0.1:5000/ferry-postgres@{DIGEST}"
    copy = tools.commands[-1]
    assert copy[:2] == ["skopeo", "copy"]
    assert copy[-2:] == [
        f"oci:{tmp_path / 'layout'}:{built.tag}",
        f"docker://10.77.0.1:5000/ferry-postgres:{built.tag}",
    ]


def test_a_cache_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(RuntimeFailure, match="cannot use the Postgres image cache") as raised:
        build(blocker / "cache", FakeTools())

    assert raised.value.hint is not None and "--cache-dir" in raised.value.hint
