"""``[postgres]`` in fly.toml → ``AppConfig.postgres`` (a ``FollowPolicy``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError
from ferry.model.postgres_follow import FollowPolicy


def parse(text: str) -> FollowPolicy | None:
    return parse_app_config(text, base_dir=Path("/srv")).postgres


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(text, base_dir=Path("/srv"))
    return str(caught.value)


def test_follow_with_its_windows_and_minimum() -> None:
    policy = parse(
        'app = "web"\n[postgres]\ndatabase = "db"\nreplicas = "follow"\nmin_replicas = 1\n'
        'scale_out_after = "10s"\nscale_in_after = "2m"\n'
    )
    assert policy == FollowPolicy(
        database="db", replicas="follow", min_replicas=1, scale_out_after=10, scale_in_after=120
    )
    assert policy.follows


def test_windows_default_to_the_autoscale_sections_then_to_the_autoscalers_defaults() -> None:
    own = parse(
        '[autoscale]\nscale_out_after = "5s"\nscale_in_after = "1m"\n[postgres]\ndatabase = "db"\n'
    )
    assert own is not None and (own.scale_out_after, own.scale_in_after) == (5, 60)
    bare = parse('[postgres]\ndatabase = "db"\n')
    assert bare is not None and (bare.scale_out_after, bare.scale_in_after) == (30, 300)
    assert bare.replicas == "fixed" and not bare.follows


def test_no_section_is_no_policy() -> None:
    assert parse('app = "web"\n') is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[postgres]\nreplicas = "follow"\n', "needs database"),
        ('[postgres]\ndatabase = "DB!"\n', '[postgres] database "DB!"'),
        ('[postgres]\ndatabase = "db"\nreplicas = "always"\n', 'must be one of "follow", "fixed"'),
        ('[postgres]\ndatabase = "db"\nmin_replicas = -1\n', "between 0 and 6"),
        ('[postgres]\ndatabase = "db"\nmin_replicas = 9\n', "between 0 and 6"),
        ('[postgres]\ndatabase = "db"\nscale_in_after = "soon"\n', "must be a duration"),
        ('[postgres]\ndatabase = "db"\nreplica = "follow"\n', 'unknown key "replica"'),
    ],
)
def test_bad_sections_name_the_line_and_the_key(text: str, words: str) -> None:
    message = error_of(text)
    assert words in message and "fly.toml:" in message
