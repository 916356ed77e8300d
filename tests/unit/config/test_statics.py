"""``[[statics]]`` in fly.toml → ``config.statics`` of every machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ferry.config import parse_app_config
from ferry.errors import ConfigError
from ferry.model import MachineConfig

IMAGE = "127.0.0.1:5000/web@sha256:" + "a" * 64


def parse(text: str) -> MachineConfig:
    return parse_app_config(text, base_dir=Path("/srv")).machine_config(IMAGE)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(text, base_dir=Path("/srv"))
    return str(caught.value)


def test_statics_reach_the_machine_config_in_fly_shape() -> None:
    config = parse(
        '[[statics]]\nguest_path = "/app/public"\nurl_prefix = "/static/"\n'
        '[[statics]]\nguest_path = "/app/site"\nurl_prefix = "/"\nindex_document = "index.html"\n'
    )

    assert config.model_dump(mode="json")["statics"] == [
        {
            "guest_path": "/app/public",
            "url_prefix": "/static/",
            "index_document": None,
        },
        {
            "guest_path": "/app/site",
            "url_prefix": "/",
            "index_document": "index.html",
        },
    ]


def test_no_statics_section_means_none() -> None:
    assert parse('app = "web"\n').statics == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[statics]]\nguest_path = "/p"\nurl_prefix = "/"\ntigris_bucket = "b"\n',
            "fly.toml:4: [[statics]] tigris_bucket is not supported yet",
        ),
        ('[[statics]]\nurl_prefix = "/"\n', "fly.toml:1: [[statics]] needs guest_path"),
        (
            '[[statics]]\nguest_path = "public"\nurl_prefix = "/"\n',
            "fly.toml:2: [[statics]] guest_path must be an absolute path",
        ),
        (
            '[[statics]]\nguest_path = "/a/../etc"\nurl_prefix = "/"\n',
            "guest_path must be an absolute path without '..'",
        ),
        (
            '[[statics]]\nguest_path = "/p"\nurl_prefix = "static"\n',
            "fly.toml:3: [[statics]] url_prefix must be a URL path starting with '/'",
        ),
        (
            '[[statics]]\nguest_path = "/p"\nurl_prefix = "/"\nindex_document = "a/b.html"\n',
            "fly.toml:4: [[statics]] index_document must be a file name",
        ),
        (
            '[[statics]]\nguest_path = "/p"\nurl_prefix = "/s"\n'
            '[[statics]]\nguest_path = "/q"\nurl_prefix = "/s"\n',
            "fly.toml:6: [[statics]] url_prefix '/s' is already served",
        ),
    ],
)
def test_mistakes_are_named(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_an_unknown_key_is_a_warning_naming_it() -> None:
    config = parse_app_config(
        '[[statics]]\nguest_path = "/p"\nurl_prefix = "/"\nmaxage = 3\n', base_dir=Path("/srv")
    )

    assert config.warnings == ('fly.toml:4: unknown key "maxage" in [[statics]] ignored',)
    assert len(config.statics) == 1


def test_at_most_ten_statics() -> None:
    text = "".join(f'[[statics]]\nguest_path = "/p"\nurl_prefix = "/{i}/"\n' for i in range(11))

    assert "one [[statics]] too many: an app has at most 10" in error_of(text)


def test_the_api_refuses_a_bucket_and_an_unpinned_image() -> None:
    static = {"guest_path": "/p", "url_prefix": "/"}
    with pytest.raises(ValidationError, match="tigris_bucket is not supported yet"):
        MachineConfig.from_request({"image": IMAGE, "statics": [{**static, "tigris_bucket": "b"}]})
    with pytest.raises(ValidationError, match="statics need an image pinned by digest"):
        MachineConfig.from_request({"image": "registry/web:latest", "statics": [static]})
    with pytest.raises(ValidationError, match="at most 10"):
        MachineConfig.model_validate(
            {"image": IMAGE, "statics": [{**static, "url_prefix": f"/{i}"} for i in range(11)]}
        )


def test_deploy_can_plan_with_an_image_not_pinned_yet() -> None:
    # `ferry deploy` counts checks from a config made before the image is pushed;
    # only a request to the Machines API must carry the pinned image.
    app = parse_app_config('[[statics]]\nguest_path = "/p"\nurl_prefix = "/"\n', base_dir=Path("/"))

    assert app.machine_config("image").statics[0].guest_path == "/p"
