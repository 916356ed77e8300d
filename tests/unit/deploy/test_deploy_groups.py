"""A two-group app (web + worker): deploy plans and scale counts per process group."""

from __future__ import annotations

import pytest

from ferry.deploy.plan import machine_group, plan_deploy
from ferry.deploy.scale import parse_counts, plan_scale, resolve_counts
from ferry.errors import ValidationError
from ferry.model import Machine, MachineConfig
from tests.unit.deploy.deploy_fakes import make_machine


def in_group(machine_id: str, group: str, region: str = "ams", minute: int = 0) -> Machine:
    config = MachineConfig(
        image="reg/web@sha256:" + "0" * 64, metadata={"fly_process_group": group}
    )
    return make_machine(machine_id, region, config=config, created_minute=minute)


def test_a_new_two_group_app_gets_one_machine_per_group_per_requested_region() -> None:
    plan = plan_deploy([], ["ams", "iad"], "rolling", ("web", "worker"), fill_regions=True)

    assert [(s.kind, s.region, s.group) for s in plan.steps] == [
        ("create", "ams", "web"),
        ("create", "ams", "worker"),
        ("create", "iad", "web"),
        ("create", "iad", "worker"),
    ]
    assert plan.steps[1].label == "new machine (ams, worker)"


def test_each_machine_is_updated_as_its_own_group() -> None:
    machines = [in_group("w1", "web"), in_group("w2", "web", minute=1), in_group("k1", "worker")]

    plan = plan_deploy(machines, ["ams"], "rolling", ("web", "worker"))

    assert [(s.kind, s.machine_id, s.group) for s in plan.steps] == [
        ("update", "w1", "web"),
        ("update", "w2", "web"),
        ("update", "k1", "worker"),
    ]


def test_a_new_group_gets_one_machine_in_the_first_region() -> None:
    machines = [in_group("w1", "web"), in_group("w2", "web", "iad")]

    plan = plan_deploy(machines, ["ams", "iad"], "rolling", ("web", "worker"), fill_regions=False)

    assert [(s.kind, s.region, s.group) for s in plan.steps] == [
        ("update", "ams", "web"),
        ("create", "ams", "worker"),
        ("update", "iad", "web"),
    ]


def test_a_worker_scaled_to_one_region_is_not_copied_to_every_region() -> None:
    machines = [in_group("w1", "web"), in_group("w2", "web", "iad"), in_group("k1", "worker")]

    plan = plan_deploy(machines, ["ams", "iad"], "rolling", ("web", "worker"), fill_regions=False)

    assert [s.kind for s in plan.steps] == ["update"] * 3


def test_machines_of_a_group_fly_toml_dropped_stop_the_deploy_with_advice() -> None:
    machines = [in_group("w1", "web"), in_group("c1", "cron")]

    with pytest.raises(ValidationError) as error:
        plan_deploy(machines, ["ams"], "rolling", ("web",))

    assert "process group cron, which fly.toml no longer defines" in error.value.message
    assert "ferry scale count cron=0" in (error.value.hint or "")


def test_machines_without_group_metadata_are_the_app_group() -> None:
    assert machine_group(make_machine("a1")) == "app"


def test_counts_per_group_and_a_bare_count() -> None:
    assert parse_counts(["web=2", "worker=1"]) == {"web": 2, "worker": 1}
    assert parse_counts(["3"]) == {None: 3}
    for bad in (["web=two"], ["3", "web=1"], ["web=1", "web=2"], []):
        with pytest.raises(ValidationError):
            parse_counts(bad)


def test_a_bare_count_needs_an_app_with_one_group() -> None:
    machines = [in_group("w1", "web"), in_group("k1", "worker")]

    with pytest.raises(ValidationError, match=r"several process groups \(web, worker\)"):
        resolve_counts({None: 2}, machines)
    assert resolve_counts({None: 2}, [in_group("w1", "web")]) == {"web": 2}
    assert resolve_counts({None: 2}, []) == {"app": 2}


def test_an_unknown_group_is_named_but_fly_toml_groups_count() -> None:
    machines = [in_group("w1", "web")]

    with pytest.raises(ValidationError, match="unknown process group 'wrker'"):
        resolve_counts({"wrker": 1}, machines)
    assert resolve_counts({"worker": 1}, machines, known=("web", "worker")) == {"worker": 1}


def test_scaling_a_group_copies_and_removes_only_its_own_machines() -> None:
    machines = [
        in_group("w1", "web"),
        in_group("k1", "worker"),
        in_group("k2", "worker", minute=5),
    ]

    web = plan_scale(machines, "ams", 2, "web")
    worker = plan_scale(machines, "ams", 1, "worker")

    assert (web.current, web.create, web.template and web.template.id) == (1, 1, "w1")
    assert (worker.current, [m.id for m in worker.destroy]) == (2, ["k2"])


def test_scaling_a_group_without_machines_says_deploy_first() -> None:
    with pytest.raises(ValidationError, match="the process group 'worker' has no machine"):
        plan_scale([in_group("w1", "web")], "ams", 1, "worker")
