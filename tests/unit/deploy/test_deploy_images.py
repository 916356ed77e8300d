from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ferry.deploy.images import (
    ImageSource,
    buildah_bud_args,
    classify_image,
    deployment_tag,
    dockerfile_source,
    publish_image,
    registry_address,
    repository_of,
)
from ferry.errors import ConfigError, RuntimeFailure, UnavailableError

REGISTRY = "10.77.0.1:5000"
DIGEST = "sha256:" + "ab" * 32
NOW = datetime(2026, 11, 26, 10, 15, 0, tzinfo=UTC)


class RecordingRunner:
    """Records command lines; writes the digest where --digestfile points."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.fail_on = fail_on

    def run(self, args: Sequence[str]) -> str:
        self.commands.append(list(args))
        if self.fail_on and self.fail_on in args:
            raise RuntimeFailure(f"{args[0]} {self.fail_on} failed")
        if "--digestfile" in args:
            Path(args[args.index("--digestfile") + 1]).write_text(DIGEST)
        if args[:2] == ["skopeo", "inspect"]:
            return json.dumps({"Digest": DIGEST})
        return ""


def test_dockerfile_build_pushes_by_digest_and_removes_the_local_image(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    source = dockerfile_source(dockerfile, tmp_path, {"V": "1"}, "prod")
    runner = RecordingRunner()
    ref = publish_image(source, app="web", registry=REGISTRY, runner=runner, now=NOW)
    assert ref == f"{REGISTRY}/web@{DIGEST}"
    bud, push, rmi = runner.commands
    local = "localhost/ferry-build/web:deployment-20261126T101500Z"
    assert bud == [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "-f",
        str(dockerfile),
        "--build-arg",
        "V=1",
        "--target",
        "prod",
        "-t",
        local,
        str(tmp_path),
    ]
    assert push[:3] == ["buildah", "push", "--tls-verify=false"]
    assert push[-2:] == [local, f"docker://{REGISTRY}/web:deployment-20261126T101500Z"]
    assert rmi == ["buildah", "rmi", local]


def test_failed_build_still_removes_the_local_image(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    source = dockerfile_source(tmp_path / "Dockerfile", tmp_path, {}, None)
    runner = RecordingRunner(fail_on="bud")
    with pytest.raises(RuntimeFailure, match="bud failed"):
        publish_image(source, app="web", registry=REGISTRY, runner=runner, now=NOW)
    assert runner.commands[-1][:2] == ["buildah", "rmi"]


def test_missing_dockerfile_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Dockerfile .*nope"):
        dockerfile_source(tmp_path / "nope", tmp_path, {}, None)


def test_oci_layout_and_archive_are_copied_with_skopeo(tmp_path: Path) -> None:
    layout = tmp_path / "img"
    layout.mkdir()
    (layout / "oci-layout").write_text("{}")
    (tmp_path / "img.tar").write_bytes(b"")
    runner = RecordingRunner()
    for image, transport in (
        ("./img", f"oci:{layout}"),
        ("img.tar", f"oci-archive:{tmp_path / 'img.tar'}"),
    ):
        source = classify_image(image, tmp_path, REGISTRY)
        ref = publish_image(source, app="web", registry=REGISTRY, runner=runner, now=NOW)
        assert ref == f"{REGISTRY}/web@{DIGEST}"
        copy = runner.commands[-1]
        assert copy[:4] == ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
        assert copy[-2] == transport


def test_image_already_in_the_cluster_registry_is_only_resolved() -> None:
    runner = RecordingRunner()
    source = classify_image(f"{REGISTRY}/other:v3", Path("/nonexistent"), REGISTRY)
    assert source.kind == "cluster"
    ref = publish_image(source, app="web", registry=REGISTRY, runner=runner, now=NOW)
    assert ref == f"{REGISTRY}/other@{DIGEST}"
    assert runner.commands == [
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{REGISTRY}/other:v3"]
    ]


def test_other_registry_reference_is_copied_into_the_cluster() -> None:
    source = classify_image("docker.io/library/nginx:1.27", Path("/nonexistent"), REGISTRY)
    runner = RecordingRunner()
    publish_image(source, app="web", registry=REGISTRY, runner=runner, now=NOW)
    assert runner.commands[0][-2] == "docker://docker.io/library/nginx:1.27"


def test_missing_or_wrong_image_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        classify_image("./missing", tmp_path, REGISTRY)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="neither an OCI layout"):
        classify_image("./plain", tmp_path, REGISTRY)


def test_small_pure_helpers() -> None:
    assert deployment_tag(NOW) == "deployment-20261126T101500Z"
    assert repository_of("10.0.0.1:5000/web:tag") == "10.0.0.1:5000/web"
    assert repository_of(f"10.0.0.1:5000/web@{DIGEST}") == "10.0.0.1:5000/web"
    assert repository_of("10.0.0.1:5000/web") == "10.0.0.1:5000/web"
    assert registry_address({"registry": REGISTRY}) == REGISTRY
    with pytest.raises(UnavailableError):
        registry_address({})
    args = buildah_bud_args(
        ImageSource("dockerfile", "/x/Dockerfile", context_dir=Path("/x")), "l:t"
    )
    assert args[-3:] == ["-t", "l:t", "/x"]
