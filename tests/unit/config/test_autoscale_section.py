"""``[autoscale]`` in fly.toml: defaults, every key, and errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError
from ferry.model.autoscale import AutoscalePolicy

BASE = 'app = "web"\nprimary_region = "ams"\n\n'


def parse(text: str) -> AutoscalePolicy | None:
    return parse_app_config(BASE + text, filename="fly.toml", base_dir=Path("/srv")).autoscale


def test_no_section_means_no_policy() -> None:
    assert parse("") is None


def test_an_empty_section_enables_the_defaults() -> None:
    policy = parse("[autoscale]\n")

    assert policy == AutoscalePolicy()
    assert policy is not None and policy.enabled and policy.regions == []
    assert (policy.min_per_region, policy.max_per_region, policy.max_total) == (0, 3, 10)
    assert (policy.scale_out_after, policy.scale_in_after) == (30.0, 300.0)
    assert (policy.stop_idle_after, policy.destroy_after) == (300.0, 600.0)
    assert policy.target_concurrency is None and policy.target_for(25) == 25


def test_every_key_is_read() -> None:
    policy = parse(
        "[autoscale]\n"
        'regions = ["ams", "sin"]\n'
        "min_per_region = 1\n"
        "max_per_region = 4\n"
        "max_total = 6\n"
        "target_concurrency = 8\n"
        'scale_out_after = "45s"\n'
        'scale_in_after = "2m"\n'
        'stop_idle_after = "90s"\n'
        'destroy_after = "1h"\n'
        "enabled = false\n"
    )

    assert policy == AutoscalePolicy(
        enabled=False,
        regions=["ams", "sin"],
        min_per_region=1,
        max_per_region=4,
        max_total=6,
        target_concurrency=8,
        scale_out_after=45,
        scale_in_after=120,
        stop_idle_after=90,
        destroy_after=3600,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "min_per_region = 4\nmax_per_region = 2\n",
            "fly.toml:5: [autoscale] min_per_region (4) must not exceed max_per_region (2)",
        ),
        (
            'regions = ["ams", "sin"]\nmin_per_region = 3\nmax_total = 5\n',
            "fly.toml:7: [autoscale] max_total (5) must be at least min_per_region x regions"
            " (3 x 2 = 6)",
        ),
        (
            'scale_out_after = "soon"\n',
            'fly.toml:5: [autoscale] scale_out_after must be a duration such as "10s" or "1m30s",'
            ' got "soon"',
        ),
        ("max_machines = 3\n", 'fly.toml:5: unknown key "max_machines" in [autoscale]'),
        ('regions = ["AMS"]\n', 'fly.toml:5: [autoscale] regions has an invalid region code "AMS"'),
        ("target_concurrency = 0\n", "fly.toml:5: [autoscale] target_concurrency must be an"),
    ],
)
def test_mistakes_name_file_line_and_key(body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse("[autoscale]\n" + body)
    assert str(caught.value).startswith(expected)
