"""The host's copy of the DNS records: exact JSON round trip, damaged copies refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.errors import ValidationError
from ferry.net import sixpn
from ferry.net.dns_server import load_records, save_records
from ferry.net.internal_records import InternalRecords, MachineRecord
from ferry.net.latency import LatencyMatrix

from .internal_fixtures import ACME, OTHER, machine, records


def test_json_copy_round_trips_everything() -> None:
    original = records()
    copy = InternalRecords.from_json(original.to_json())
    assert copy.to_json() == original.to_json()
    assert copy.machines == original.machines
    assert copy.apps == original.apps and copy.apps[ACME] == ("db", "empty", "web")
    assert copy.peers[OTHER]["spy"] == original.peers[OTHER]["spy"]
    assert copy.distances.rtt_ms("sin", "ams") == 169.0
    assert copy.machines_of(ACME, "WEB")[0].metadata == {"role": "primary"}


def test_saved_copy_is_what_a_restarted_host_answers_from(tmp_path: Path) -> None:
    path = tmp_path / "dns-records.json"
    assert load_records(path).machines == ()  # no copy yet: nothing, not an error
    save_records(path, records())
    assert load_records(path).to_json() == records().to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["dns-records.json"]  # no temp left


def test_the_clusters_latency_matrix_ranks_regions() -> None:
    built = InternalRecords.from_latency(LatencyMatrix.default().median)
    assert built.distances.by_distance("ams", ["sin", "fra", "iad"]) == ["fra", "iad", "sin"]
    assert {"ams", "syd"} <= built.regions


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=9), "version 1"),
        (lambda d: d["machines"][0].update(address="10.0.0.1"), "not an IPv6 address"),
        (lambda d: d["machines"][0].update(address="fdaa:0:99::2"), "not in 6PN network"),
        (lambda d: d["machines"][0].update(started="yes"), "started must be true or false"),
        (lambda d: d["machines"][0].update(metadata={"a": 1}), "metadata must map text"),
        (lambda d: d["machines"][0].pop("region"), "region must be text"),
        (lambda d: d.update(apps={"x": ["a"]}), "network key 'x'"),
        (lambda d: d["peers"][str(ACME)].update(laptop="fdaa:0:99::5"), "not in network"),
        (lambda d: d.update(rtt_ms={"ams": 3}), "rtt_ms"),
    ],
)
def test_damaged_copies_are_refused_naming_the_field(mutate: object, message: str) -> None:
    document = json.loads(records().to_json())
    mutate(document)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=message):
        InternalRecords.from_json(json.dumps(document))


def test_not_json_is_refused() -> None:
    with pytest.raises(ValidationError, match="not JSON"):
        InternalRecords.from_json("{")


def test_a_machine_outside_its_organizations_network_is_refused() -> None:
    with pytest.raises(ValidationError, match="not in 6PN network"):
        MachineRecord("m1", "web", ACME, "ams", "app", sixpn.machine_address(OTHER, 1, 1), True)
    with pytest.raises(ValidationError, match="must not be empty"):
        machine("", "web", "ams", 1)
