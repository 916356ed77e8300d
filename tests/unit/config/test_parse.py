"""A fly.toml becomes the app config and the machine config a user expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config import AppConfig, parse_app_config
from ferry.model import (
    CheckConfig,
    Concurrency,
    GuestConfig,
    InitConfig,
    MachineConfig,
    RestartPolicy,
    ServiceConfig,
    ServicePort,
    StopConfig,
)

FULL = """\
app = "hello-ferry"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"
console_command = "/app/bin/console"

[build]
  dockerfile = "Dockerfile.prod"
  build-target = "runtime"
  [build.args]
    NODE_VERSION = 20

[env]
  PORT = "8080"
  DEBUG = false

[http_service]
  internal_port = 8080
  auto_stop_machines = true
  auto_start_machines = true
  min_machines_running = 1
  processes = ["app"]
  [http_service.concurrency]
    type = "requests"
    soft_limit = 200
    hard_limit = 250
  [[http_service.checks]]
    grace_period = "10s"
    interval = "30s"
    timeout = "5s"
    path = "/health"
    headers = { X-Probe = "ferry" }

[[services]]
  internal_port = 5432
  protocol = "tcp"
  [[services.ports]]
    port = 5432
  [[services.tcp_checks]]
    interval = 15000

[checks.alive]
  type = "tcp"
  port = 8080

[[vm]]
  size = "shared-cpu-2x"
  memory = "1gb"

[[restart]]
  policy = "on-failure"
  retries = 3

[deploy]
  strategy = "immediate"
  max_unavailable = 2
  wait_timeout = "2m"

[experimental]
  cmd = ["gunicorn", "app:wsgi"]
"""


def parse(text: str, base_dir: Path = Path("/srv/app")) -> AppConfig:
    return parse_app_config(text, base_dir=base_dir)


def test_full_fly_toml_becomes_the_expected_machine_config() -> None:
    config = parse(FULL)

    assert config.machine_config("registry.local/hello@sha256:abc") == MachineConfig(
        image="registry.local/hello@sha256:abc",
        guest=GuestConfig(cpu_kind="shared", cpus=2, memory_mb=1024),
        env={"PORT": "8080", "DEBUG": "false", "PRIMARY_REGION": "ams", "FLY_PROCESS_GROUP": "app"},
        restart=RestartPolicy(policy="on-failure", max_retries=3),
        init=InitConfig(cmd=["gunicorn", "app:wsgi"]),
        services=[
            ServiceConfig(
                protocol="tcp",
                internal_port=8080,
                ports=[
                    ServicePort(port=80, handlers=["http"]),
                    ServicePort(port=443, handlers=["tls", "http"]),
                ],
                autostart=True,
                autostop="stop",
                min_machines_running=1,
                concurrency=Concurrency(type="requests", soft_limit=200, hard_limit=250),
                checks=[
                    CheckConfig(
                        type="http",
                        grace_period="10s",
                        interval="30s",
                        timeout="5s",
                        path="/health",
                        headers={"X-Probe": "ferry"},
                    )
                ],
            ),
            ServiceConfig(
                protocol="tcp",
                internal_port=5432,
                ports=[ServicePort(port=5432)],
                checks=[CheckConfig(type="tcp", interval="15000ms")],
            ),
        ],
        checks={"alive": CheckConfig(type="tcp", port=8080)},
        stop_config=StopConfig(signal="SIGTERM", timeout="30s"),
        metadata={"fly_platform_version": "v2", "fly_process_group": "app"},
    )


def test_full_fly_toml_top_level_build_and_deploy() -> None:
    config = parse(FULL)

    assert (config.app, config.primary_region) == ("hello-ferry", "ams")
    assert (config.kill_signal, config.kill_timeout) == ("SIGTERM", 30.0)
    assert config.build.dockerfile == Path("/srv/app/Dockerfile.prod")
    assert config.build.args == {"NODE_VERSION": "20"}
    assert config.build.target == "runtime"
    assert (config.deploy.strategy, config.deploy.max_unavailable) == ("immediate", 2.0)
    assert config.deploy.wait_timeout == 120.0
    assert config.http_service_internal_port == 8080
    assert config.warnings == (
        'fly.toml:5: "console_command" is ignored: Ferry has no console command yet',
    )


def test_an_empty_file_gets_fly_defaults() -> None:
    config = parse("")

    assert (config.kill_signal, config.kill_timeout) == ("SIGINT", 5.0)
    assert config.deploy.strategy == "rolling"
    assert config.deploy.max_unavailable == 0.33
    assert config.deploy.wait_timeout == 300.0
    assert config.vms == [] and config.restarts == []
    assert config.services == [] and config.http_service_internal_port is None
    assert config.groups == ("app",) and config.warnings == ()
    machine = config.machine_config("img:1")
    assert machine.effective_guest == GuestConfig(cpu_kind="shared", cpus=1, memory_mb=256)
    assert machine.stop_config == StopConfig(signal="SIGINT", timeout="5s")
    assert "PRIMARY_REGION" not in machine.env


def test_http_service_is_port_80_and_443_as_flyctl_makes_it() -> None:
    service = parse("[http_service]\n").services[0].value

    assert service.internal_port == 8080
    assert [(p.port, p.handlers, p.force_https) for p in service.ports] == [
        (80, ["http"], False),
        (443, ["tls", "http"], False),
    ]
    assert (service.autostart, service.autostop, service.min_machines_running) == (True, "off", 0)


def test_http_service_comes_before_services() -> None:
    text = "[[services]]\ninternal_port = 9000\n[http_service]\ninternal_port = 3000\n"

    assert [s.value.internal_port for s in parse(text).services] == [3000, 9000]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"off"', "off"),
        ('"stop"', "stop"),
        ('"suspend"', "suspend"),
        ("true", "stop"),
        ("false", "off"),
    ],
)
def test_auto_stop_machines_accepts_words_and_booleans(written: str, expected: str) -> None:
    config = parse(f"[http_service]\nauto_stop_machines = {written}\n")

    assert config.services[0].value.autostop == expected


def test_port_ranges_in_services() -> None:
    text = """[[services]]
internal_port = 7000
[[services.ports]]
start_port = 7000
end_port = 7010
"""

    port = parse(text).services[0].value.ports[0]

    assert (port.port, port.start_port, port.end_port) == (None, 7000, 7010)


@pytest.mark.parametrize(
    ("vm", "expected"),
    [
        ('size = "shared-cpu-2x"', GuestConfig(cpu_kind="shared", cpus=2, memory_mb=512)),
        ('size = "shared-cpu-2x"\nmemory = "2gb"', GuestConfig(cpus=2, memory_mb=2048)),
        ('size = "shared-cpu-1x"\ncpus = 4', GuestConfig(cpus=4, memory_mb=256)),
        (
            'size = "performance-1x"\nmemory = 4096',
            GuestConfig(cpu_kind="performance", memory_mb=4096),
        ),
        ('memory = "1gb"', GuestConfig(cpus=1, memory_mb=1024)),
        ('memory = "512mb"', GuestConfig(memory_mb=512)),
        ('memory = "768"', GuestConfig(memory_mb=768)),
        ("cpus = 2", GuestConfig(cpus=2, memory_mb=512)),
        ('cpu_kind = "performance"', GuestConfig(cpu_kind="performance", memory_mb=2048)),
    ],
)
def test_vm_size_is_overridden_by_memory_cpus_and_kind(vm: str, expected: GuestConfig) -> None:
    assert parse(f"[[vm]]\n{vm}\n").machine_config("i").guest == expected


def test_a_single_vm_table_is_accepted() -> None:
    assert parse('[vm]\nmemory = "1gb"\n').machine_config("i").guest == GuestConfig(memory_mb=1024)


@pytest.mark.parametrize(
    ("policy", "expected"), [("never", "no"), ("always", "always"), ("on-failure", "on-failure")]
)
def test_restart_policy_uses_machines_api_names(policy: str, expected: str) -> None:
    restart = parse(f'[[restart]]\npolicy = "{policy}"\n').machine_config("i").restart

    assert restart.policy == expected


def test_experimental_string_commands_are_split_like_a_shell() -> None:
    text = """[experimental]
cmd = "gunicorn app:wsgi --bind '0.0.0.0:8080'"
entrypoint = ["/bin/tini", "--"]
"""
    init = parse(text).init

    assert init.cmd == ["gunicorn", "app:wsgi", "--bind", "0.0.0.0:8080"]
    assert init.entrypoint == ["/bin/tini", "--"]
    assert init.exec is None


def test_primary_region_overrides_env() -> None:
    config = parse('primary_region = "ams"\n[env]\nPRIMARY_REGION = "iad"\nOTHER = "x"\n')

    env = config.machine_config("img:1", region="sin").env

    assert env == {"PRIMARY_REGION": "ams", "OTHER": "x", "FLY_PROCESS_GROUP": "app"}
    assert config.env["PRIMARY_REGION"] == "iad"


def test_region_of_the_machine_is_primary_when_the_file_names_none() -> None:
    env = parse("").machine_config("img:1", region="sin").env
    assert env == {"PRIMARY_REGION": "sin", "FLY_PROCESS_GROUP": "app"}


def test_env_numbers_and_booleans_become_text() -> None:
    env = parse("[env]\nWORKERS = 4\nRATIO = 0.5\nDEBUG = true\n").env

    assert env == {"WORKERS": "4", "RATIO": "0.5", "DEBUG": "true"}


@pytest.mark.parametrize(
    ("written", "seconds"), [("10", 10.0), ('"1m30s"', 90.0), ('"300s"', 300.0)]
)
def test_kill_timeout_takes_seconds_or_a_duration(written: str, seconds: float) -> None:
    assert parse(f"kill_timeout = {written}\n").kill_timeout == seconds


def test_kill_signal_may_omit_the_sig_prefix() -> None:
    assert parse('kill_signal = "term"\n').kill_signal == "SIGTERM"


def test_prebuilt_image_and_absolute_dockerfile() -> None:
    assert parse('[build]\nimage = "nginx:1.27"\n').build.image == "nginx:1.27"
    dockerfile = parse('[build]\ndockerfile = "/opt/Dockerfile"\n').build.dockerfile
    assert dockerfile == Path("/opt/Dockerfile")


def test_one_process_group_sets_the_command() -> None:
    config = parse('[processes]\nweb = "bin/rails server -p 8080"\n')

    machine = config.machine_config("img")
    assert machine.init.cmd == ["bin/rails", "server", "-p", "8080"]
    assert machine.metadata["fly_process_group"] == "web"
    assert parse("").machine_config("img").metadata["fly_process_group"] == "app"


def test_app_config_is_frozen() -> None:
    config = parse(FULL)

    with pytest.raises(ValueError):
        config.app = "other"  # type: ignore[misc]
