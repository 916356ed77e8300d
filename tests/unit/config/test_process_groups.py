"""Several [processes] groups: each section's `processes = [...]` decides which machines get it."""

from __future__ import annotations

import re

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError, ValidationError
from ferry.model import GuestConfig

TWO_GROUPS = """\
app = "shop"

[processes]
  web = "bin/server --port 8080"
  worker = "bin/worker"

[http_service]
  internal_port = 8080
  processes = ["web"]

[checks.queue]
  type = "tcp"
  port = 9000
  processes = ["worker"]

[[vm]]
  memory = "512mb"

[[vm]]
  memory = "1gb"
  processes = ["worker"]

[[restart]]
  policy = "always"

[[restart]]
  policy = "never"
  processes = ["worker"]
"""


def test_each_group_runs_its_command_and_says_its_name() -> None:
    config = parse_app_config(TWO_GROUPS)

    web, worker = (
        config.machine_config("img", group="web"),
        config.machine_config("img", group="worker"),
    )

    assert config.groups == ("web", "worker")
    assert web.init.cmd == ["bin/server", "--port", "8080"]
    assert worker.init.cmd == ["bin/worker"]
    assert (web.metadata["fly_process_group"], web.env["FLY_PROCESS_GROUP"]) == ("web", "web")
    assert (worker.metadata["fly_process_group"], worker.env["FLY_PROCESS_GROUP"]) == (
        "worker",
        "worker",
    )


def test_services_checks_vm_and_restart_apply_to_their_groups_only() -> None:
    config = parse_app_config(TWO_GROUPS)

    web, worker = (
        config.machine_config("img", group="web"),
        config.machine_config("img", group="worker"),
    )

    assert [s.internal_port for s in web.services] == [8080] and worker.services == []
    assert web.checks == {} and list(worker.checks) == ["queue"]
    assert web.guest == GuestConfig(memory_mb=512)
    assert worker.guest == GuestConfig(memory_mb=1024)
    assert (web.restart.policy, worker.restart.policy) == ("always", "no")
    assert config.group_has_services("web") and not config.group_has_services("worker")


def test_an_empty_command_keeps_the_images_cmd() -> None:
    config = parse_app_config('[processes]\napp = ""\n')

    assert config.machine_config("img").init.cmd is None


def test_a_group_must_be_named_when_there_are_several() -> None:
    config = parse_app_config(TWO_GROUPS)

    with pytest.raises(ValidationError, match=r"several process groups \(web, worker\)"):
        config.machine_config("img")
    with pytest.raises(ValidationError, match="unknown process group 'cron'"):
        config.machine_config("img", group="cron")


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ('[http_service]\nprocesses = ["wbe"]\n', 5),
        ('[[services]]\ninternal_port = 1\nprocesses = ["wbe"]\n', 6),
        ('[checks.x]\nport = 80\nprocesses = ["wbe"]\n', 6),
        ('[[vm]]\nprocesses = ["wbe"]\n', 5),
        ('[[restart]]\nprocesses = ["wbe"]\n', 5),
        ('[[files]]\nguest_path = "/a"\nraw_value = "aGk="\nprocesses = ["wbe"]\n', 7),
    ],
)
def test_a_process_name_that_is_not_a_group_is_an_error_naming_it(section: str, line: int) -> None:
    text = '[processes]\nweb = "a"\nworker = "b"\n' + section

    with pytest.raises(ConfigError) as error:
        parse_app_config(text)

    message = str(error.value)
    assert message.startswith(f"fly.toml:{line}:")
    assert 'names the process group "wbe", which [processes] does not define' in message
    assert '(groups: "web", "worker")' in message


def test_two_restart_sections_for_one_group_are_an_error() -> None:
    text = '[processes]\nweb = "a"\n' + '[[restart]]\nprocesses = ["web"]\n' * 2

    with pytest.raises(
        ConfigError, match=re.escape('fly.toml:6: [[restart]] covers the process group "web"')
    ):
        parse_app_config(text)
