"""Image references and configs, without a registry."""

from __future__ import annotations

import pytest

from ferry.errors import ValidationError
from ferry.runtime.driver import ImageConfig
from ferry.runtime.images import image_config_from_oci, split_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_digest_reference_splits_into_name_and_digest() -> None:
    assert split_reference(f"127.0.0.1:5000/app@{DIGEST}") == ("127.0.0.1:5000/app", DIGEST)


def test_tag_next_to_a_digest_is_dropped() -> None:
    assert split_reference(f"reg:5000/team/app:v1@{DIGEST}") == ("reg:5000/team/app", DIGEST)


def test_tag_reference_has_no_digest_yet() -> None:
    assert split_reference("reg:5000/app:v1") == ("reg:5000/app:v1", None)


@pytest.mark.parametrize("reference", ["", "reg/app@sha256:abc", "reg/app@md5:" + "0" * 64])
def test_malformed_references_are_rejected(reference: str) -> None:
    with pytest.raises(ValidationError):
        split_reference(reference)


def test_image_config_reads_the_run_fields() -> None:
    blob = {
        "config": {
            "Entrypoint": ["/e"],
            "Cmd": ["c"],
            "Env": ["A=1"],
            "WorkingDir": "/w",
            "User": "7",
        }
    }
    assert image_config_from_oci(blob) == ImageConfig(("/e",), ("c",), ("A=1",), "/w", "7")


def test_image_config_defaults_when_fields_are_null() -> None:
    blob = {"config": {"Entrypoint": None, "Cmd": None, "WorkingDir": ""}}
    assert image_config_from_oci(blob) == ImageConfig()
