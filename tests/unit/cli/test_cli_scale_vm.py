"""`ferry scale vm` / `ferry scale memory`: Fly's size rules, and a rolling update."""

from __future__ import annotations

import httpx
import pytest

from ferry.deploy.resize import guest_for_size, guest_with_memory, memory_range
from ferry.errors import ValidationError
from ferry.model import GuestConfig
from tests.unit.cli.cli_fakes import FakeApi, invoke


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.add_app("web")
    fake.add_machine("aaa111", "ams")
    fake.add_machine("bbb222", "sin")
    return fake


def _guests(api: FakeApi) -> dict[str, object]:
    return {mid: m["config"].get("guest") for mid, m in api.machines.items()}


@pytest.mark.parametrize(
    ("kind", "cpus", "low", "high"),
    [("shared", 1, 256, 2048), ("shared", 4, 1024, 8192), ("performance", 2, 4096, 16384)],
)
def test_memory_range_follows_fly(kind: str, cpus: int, low: int, high: int) -> None:
    assert memory_range(kind, cpus) == (low, high)


def test_size_preset_with_and_without_memory() -> None:
    assert guest_for_size("shared-cpu-2x") == GuestConfig(cpu_kind="shared", cpus=2, memory_mb=512)
    assert guest_for_size("performance-1x", 4096).memory_mb == 4096


def test_unknown_size_lists_the_presets() -> None:
    with pytest.raises(ValidationError) as caught:
        guest_for_size("shared-cpu-3x")
    assert "unknown machine size 'shared-cpu-3x'" in caught.value.message
    assert "shared-cpu-1x" in (caught.value.hint or "")
    assert "performance-16x" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("memory", "words"),
    [
        (4096, "outside what shared-cpu-1x allows (256-2048 MB)"),
        (128, "256-2048"),
        (300, "not a multiple of 256"),
    ],
)
def test_memory_outside_the_size_is_refused(memory: int, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        guest_with_memory(GuestConfig(), memory)
    assert words in caught.value.message


def test_scale_vm_updates_every_machine_one_at_a_time(api: FakeApi) -> None:
    result = invoke(api, ["scale", "vm", "shared-cpu-2x", "-a", "web"])
    assert result.exit_code == 0, result.output
    expected = {"cpu_kind": "shared", "cpus": 2, "memory_mb": 512}
    assert _guests(api) == {"aaa111": expected, "bbb222": expected}
    # Each machine is updated, then waited for, before the next is touched.
    calls = [(m, p) for m, p, _ in api.requests if p.startswith("/v1/apps/web/machines/")]
    assert calls == [
        ("POST", "/v1/apps/web/machines/aaa111"),
        ("GET", "/v1/apps/web/machines/aaa111/wait"),
        ("POST", "/v1/apps/web/machines/bbb222"),
        ("GET", "/v1/apps/web/machines/bbb222/wait"),
    ]
    updates = [body for m, p, body in api.requests if m == "POST" and "/machines/" in p]
    assert updates[0]["current_version"] == "inst-aaa111"
    assert updates[0]["config"]["env"] == {"A": "1"}  # the rest of the config is kept
    assert "web now runs shared-cpu-2x (2 shared CPUs, 512 MB)" in result.stdout


def test_scale_vm_with_memory_flag(api: FakeApi) -> None:
    result = invoke(api, ["scale", "vm", "performance-1x", "--vm-memory", "4096", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert {g["memory_mb"] for g in _guests(api).values()} == {4096}  # type: ignore[index]


def test_unknown_size_changes_nothing(api: FakeApi) -> None:
    result = invoke(api, ["scale", "vm", "huge", "-a", "web"])
    assert result.exit_code == 1 and "unknown machine size 'huge'" in result.stderr
    assert "shared-cpu-1x" in result.stderr and api.requests == []


def test_scale_memory_keeps_cpus_and_checks_every_machine_first(api: FakeApi) -> None:
    api.machines["bbb222"]["config"]["guest"] = {"cpu_kind": "shared", "cpus": 4}
    result = invoke(api, ["scale", "memory", "1024", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert _guests(api) == {
        "aaa111": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024},
        "bbb222": {"cpu_kind": "shared", "cpus": 4, "memory_mb": 1024},
    }
    # 512 MB is too little for the 4-CPU machine: refused before the first update.
    before = len(api.requests)
    refused = invoke(api, ["scale", "memory", "512", "-a", "web"])
    assert refused.exit_code == 1
    assert "512 MB is outside what shared-cpu-4x allows (1024-8192 MB)" in refused.stderr
    assert [m for m, _, _ in api.requests[before:]] == ["GET"]


def test_process_group_filter_and_unknown_group(api: FakeApi) -> None:
    api.machines["bbb222"]["config"]["metadata"] = {"fly_process_group": "worker"}
    result = invoke(api, ["scale", "vm", "shared-cpu-2x", "--process-group", "worker", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert _guests(api)["aaa111"] is None and _guests(api)["bbb222"] is not None
    unknown = invoke(api, ["scale", "memory", "512", "--process-group", "db", "-a", "web"])
    assert unknown.exit_code == 1 and "no machine of process group 'db'" in unknown.stderr
    assert "app, worker" in unknown.stderr


def test_a_failed_update_stops_the_roll_and_names_what_was_not_resized(api: FakeApi) -> None:
    api.machines["aaa111"]["config"]["guest"] = {"cpu_kind": "shared", "cpus": 2, "memory_mb": 512}
    answer = api.handle

    def host_full(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/bbb222"):
            return httpx.Response(409, json={"error": "host is full", "hint": None})
        return answer(request)

    api.handle = host_full  # type: ignore[method-assign]
    result = invoke(api, ["scale", "vm", "shared-cpu-2x", "-a", "web"])
    assert result.exit_code == 1
    assert "aaa111 (ams) already has that size" in result.stdout
    assert "resizing bbb222 failed: host is full" in result.stderr
    assert "not resized: bbb222" in result.stderr
