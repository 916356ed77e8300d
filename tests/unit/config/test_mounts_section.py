"""fly.toml ``[[mounts]]``: Fly's keys honoured, the others refused by name and line."""

from __future__ import annotations

import pytest

from ferry.config.loader import parse_app_config
from ferry.config.mounts import mount_for
from ferry.errors import ConfigError


def test_a_mount_per_group_with_flys_keys() -> None:
    config = parse_app_config(
        '[processes]\nweb = "serve"\nworker = "work"\n'
        '[[mounts]]\nsource = "data"\ndestination = "/data/"\ninitial_size = "10gb"\n'
        'processes = ["web"]\nsnapshot_retention = 7\n'
        '[[mounts]]\nsource = "jobs"\ndestination = "/jobs"\ninitial_size = 2\n'
        'processes = ["worker"]\n'
    )

    web, worker = mount_for(config.mounts, "web"), mount_for(config.mounts, "worker")

    assert web is not None and (web.source, web.destination) == ("data", "/data")
    assert (web.initial_size_gb, web.snapshot_retention) == (10, 7)
    assert worker is not None and (worker.source, worker.initial_size_gb) == ("jobs", 2)


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ('destination = "/data"\n', "[[mounts]] needs a source"),
        ('source = "Data"\ndestination = "/data"\n', '[[mounts]] source "Data" must be'),
        ('source = "data"\ndestination = "/proc"\n', "would cover the machine's /proc"),
        ('source = "data"\ndestination = "/d"\ninitial_size = "0gb"\n', "at least 1 GB"),
        ('source = "data"\ndestination = "/d"\nscheduled_snapshots = true\n', "scheduled_snap"),
        (
            'source = "data"\ndestination = "/d"\nauto_extend_size_threshold = 80\n',
            "auto_extend_size_threshold is not supported yet",
        ),
    ],
)
def test_bad_mounts_are_refused_by_name(section: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_app_config("[[mounts]]\n" + section, filename="fly.toml")
    assert words in str(caught.value) and "fly.toml:" in str(caught.value)


def test_two_mounts_for_one_group_are_refused() -> None:
    one = '[[mounts]]\nsource = "a"\ndestination = "/a"\n'
    text = one + one.replace('"a"', '"b"').replace('"/a"', '"/b"')
    with pytest.raises(ConfigError, match="second mount of process group"):
        parse_app_config(text)
