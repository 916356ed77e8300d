"""Every mistake in a fly.toml is reported with the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError

BASE = """\
app = "hello-ferry"
primary_region = "ams"

[build]
  image = "nginx:1.27"

[http_service]
  internal_port = 8080
  auto_start_machines = true
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(text, filename="apps/web/fly.toml", base_dir=Path("/srv"))
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE.replace("8080", '"eighty"'),
            "apps/web/fly.toml:8: [http_service] internal_port must be an integer between 1 and"
            ' 65535, got "eighty"',
            id="wrong type for internal_port",
        ),
        pytest.param(
            BASE.replace("8080", "70000"),
            "apps/web/fly.toml:8: [http_service] internal_port must be an integer between 1 and"
            " 65535, got 70000",
            id="internal_port out of range",
        ),
        pytest.param(
            BASE + '  [[http_service.checks]]\n    interval = "soon"\n',
            "apps/web/fly.toml:11: [[http_service.checks]] interval must be a duration such as"
            ' "10s" or "1m30s", got "soon"',
            id="bad duration",
        ),
        pytest.param(
            BASE + '\n[[vm]]\n  size = "shared-cpu-3x"\n',
            'apps/web/fly.toml:12: [[vm]] size is not a known size: "shared-cpu-3x"',
            id="bad size preset",
        ),
        pytest.param(
            BASE + '\n[env]\n  LOG_LEVEL = "info"\n  FLY_REGION = "ams"\n',
            'apps/web/fly.toml:13: [env] variable "FLY_REGION" starts with FLY_, which is'
            " reserved for the platform",
            id="env name starting FLY_",
        ),
        pytest.param(
            BASE.replace(
                'image = "nginx:1.27"', 'image = "nginx:1.27"\n  dockerfile = "Dockerfile"'
            ),
            "apps/web/fly.toml:6: [build] sets both image and dockerfile",
            id="both image and dockerfile",
        ),
        pytest.param(
            BASE + '\n[deploy]\n  release_command_vm = { memory = "1gb" }\n',
            "apps/web/fly.toml:12: [deploy] release_command_vm is not supported yet by Ferry",
            id="unsupported release_command_vm",
        ),
        pytest.param(
            BASE.replace("app =", 'kill_timeout = "6m"\napp ='),
            'apps/web/fly.toml:1: kill_timeout must be at most 300 seconds, got "6m"',
            id="kill_timeout over 300 s",
        ),
        pytest.param(
            BASE.replace("auto_start_machines = true", "auto_start_machines = yes"),
            "apps/web/fly.toml:9: syntax error: Invalid value (column 25)",
            id="syntax error",
        ),
    ],
)
def test_error_names_file_line_and_key(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


def test_syntax_error_suggests_quoting_a_bare_word() -> None:
    assert 'strings need double quotes, e.g. key = "value"' in error_of("app = hello\n")


def test_size_error_lists_the_known_sizes() -> None:
    assert "shared-cpu-1x" in error_of('[[vm]]\nsize = "huge"\n')


def test_errors_in_the_second_array_entry_point_at_its_line() -> None:
    text = """\
[[services]]
  internal_port = 8080
  [[services.ports]]
    port = 80
[[services]]
  internal_port = 9090
  [[services.ports]]
    port = 81
  [[services.ports]]
    port = "ninety"
"""
    assert error_of(text).startswith(
        "apps/web/fly.toml:10: [[services.ports]] port must be an integer between 1 and 65535,"
        ' got "ninety"'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[env]\nTAGS = [1, 2]\n", "fly.toml:2: [env] TAGS must be a string, number or boolean"),
        ("kill_timeout = -1\n", "fly.toml:1: kill_timeout must be a duration"),
        ('kill_signal = "SIGNOPE"\n', "fly.toml:1: kill_signal must be a signal name"),
        ('app = "Hello World"\n', "fly.toml:1: app must be lowercase letters, digits and dashes"),
        ("http_service = 5\n", "fly.toml:1: http_service must be a table, got 5"),
        ('[http_service]\nauto_stop_machines = "sleep"\n', "fly.toml:2: [http_service] auto_stop"),
        ('[deploy]\nstrategy = "fast"\n', "fly.toml:2: [deploy] strategy must be one of"),
        ("[deploy]\nmax_unavailable = 0\n", "fly.toml:2: [deploy] max_unavailable must be"),
        ('[deploy]\nrelease_command = "  "\n', "fly.toml:2: [deploy] release_command must not"),
        ('[deploy]\nrelease_command = "say \'hi"\n', "fly.toml:2: [deploy] release_command cannot"),
        ('[deploy]\nrelease_command_timeout = "1m"\n', "fly.toml:2: [deploy] release_command_t"),
        ('[[restart]]\npolicy = "sometimes"\n', "fly.toml:2: [[restart]] policy must be one of"),
        ('[[vm]]\nmemory = "lots"\n', 'fly.toml:2: [[vm]] memory must be a size such as "512mb"'),
        ("[[vm]]\nmemory = 32\n", "fly.toml:2: [[vm]] memory must be a whole number of MB"),
        ('[[vm]]\ncpu_kind = "gpu"\n', "fly.toml:2: [[vm]] cpu_kind must be one of"),
        ('[checks.db]\ntype = "tcp"\n', "fly.toml:1: [checks.db] needs a port"),
        ('[checks.web]\nport = 80\npath = "health"\n', "fly.toml:3: [checks.web] path must start"),
        ('[[services]]\nprotocol = "tcp"\n', "fly.toml:1: [[services]] needs an internal_port"),
        (
            '[[services]]\ninternal_port = 1\n[[services.ports]]\nhandlers = ["http"]\n',
            "fly.toml:3: [[services.ports]] needs a port, or a start_port and an end_port",
        ),
        (
            '[[services]]\ninternal_port = 1\n[[services.ports]]\nport = 80\nhandlers = ["h3"]\n',
            '[[services.ports]] handlers has an unknown handler "h3"',
        ),
        (
            "[http_service.concurrency]\nsoft_limit = 50\nhard_limit = 25\n",
            "fly.toml:2: [http_service.concurrency] soft_limit (50) must not exceed hard_limit",
        ),
        ('[experimental]\ncmd = "run \'unclosed"\n', "fly.toml:2: [experimental] cmd cannot be"),
        ('[build]\nbuildpacks = ["x"]\n', "fly.toml:2: [build] buildpacks is not supported yet"),
        ('[[statics]]\nguest_path = "/a"\n', "fly.toml:1: [[statics]] needs url_prefix"),
        ('[processes]\n"Web App" = "a"\n', "is not a valid process group name"),
        ("[processes]\n", "[processes] names no process group"),
    ],
)
def test_other_mistakes_are_named(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_error_without_a_findable_line_still_names_the_file() -> None:
    message = error_of('app = "hello')

    assert message.startswith("apps/web/fly.toml: syntax error: Unterminated string at the end")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('app = "web\\n"\n', "has characters other than"),
        ('app = "Web"\n', "has uppercase letters"),
        ('app = "-web"\n', "starts or ends with '-'"),
        (f'app = "{"a" * 64}"\n', "is longer than 63 characters"),
    ],
)
def test_app_names_follow_flys_rule_in_full(text: str, why: str) -> None:
    message = error_of(text)
    assert "fly.toml:1: app must be lowercase letters, digits and dashes" in message
    assert why in message


def test_an_autoscale_region_with_a_trailing_newline_is_refused() -> None:
    assert "invalid region code" in error_of('[autoscale]\nregions = ["ams\\n"]\n')
