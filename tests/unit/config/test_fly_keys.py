"""Each Fly key is honoured, refused by name, or warned about: durations, [[files]], refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ferry.config import load_app_config, parse_app_config
from ferry.errors import ConfigError
from ferry.model import MachineFile

PORT = "[[services]]\ninternal_port = 1\n[[services.ports]]\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(text, filename="fly.toml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[mounts]]\nsource = "data"\n', "fly.toml:1: [[mounts]] needs a destination"),
        ('[mount]\nsource = "data"\n', "fly.toml:1: mount is not supported yet by Ferry"),
        (
            '[[statics]]\nguest_path = "/a"\nurl_prefix = "/"\ntigris_bucket = "b"\n',
            "fly.toml:4: [[statics]] tigris_bucket is not supported yet by Ferry",
        ),
        ("[metrics]\nport = 9091\n", "fly.toml:1: metrics is not supported yet by Ferry"),
        ("swap_size_mb = 512\n", "fly.toml:1: swap_size_mb is not supported yet by Ferry"),
        ('host_dedication_id = "x"\n', "fly.toml:1: host_dedication_id is not supported yet"),
        (
            '[http_service.tls_options]\nalpn = ["h2"]\n',
            'fly.toml:1: [http_service] tls_options.alpn = ["h2"] is not supported by Ferry',
        ),
        (
            "[http_service.http_options]\nh2_backend = true\n",
            "fly.toml:1: [http_service] http_options.h2_backend = true is not supported yet",
        ),
        (
            '[[services]]\ninternal_port = 53\nprotocol = "udp"\n',
            'fly.toml:3: [[services]] protocol is "udp", which is not supported yet by Ferry',
        ),
        (
            PORT + 'port = 8443\nhandlers = ["tls", "http"]\n',
            'fly.toml:5: [[services.ports]] handlers ["tls", "http"] are served on port 443 only',
        ),
        (
            PORT + 'port = 5432\nhandlers = ["pg_tls"]\n',
            'fly.toml:5: [[services.ports]] handler "pg_tls" is not supported yet by Ferry',
        ),
        (
            PORT + 'port = 80\nhandlers = ["proxy_proto"]\n',
            'fly.toml:5: [[services.ports]] handler "proxy_proto" is not supported yet',
        ),
        (
            PORT + "port = 80\nforce_https = true\n",
            'fly.toml:5: [[services.ports]] force_https needs the "http" handler on the same port',
        ),
        (
            '[[files]]\nguest_path = "/a"\nsecret_name = "KEY"\n',
            "fly.toml:3: [[files]] secret_name is not supported yet by Ferry",
        ),
        ('[[vm]]\nkernel_args = "quiet"\n', "fly.toml:2: [[vm]] kernel_args is not supported yet"),
        (
            '[[vm]]\npersist_rootfs = "always"\n',
            "fly.toml:2: [[vm]] persist_rootfs is not supported yet",
        ),
        ("machine_checks = []\n", "fly.toml:1: machine_checks is not supported yet by Ferry"),
    ],
)
def test_a_fly_key_ferry_does_not_do_is_refused_by_name(text: str, expected: str) -> None:
    message = error_of(text)

    assert message.startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[files]]\nraw_value = "aGk="\n', "fly.toml:1: [[files]] needs a guest_path"),
        ('[[files]]\nguest_path = "etc/x"\nraw_value = "aGk="\n', "guest_path must be an absolute"),
        ('[[files]]\nguest_path = "/x"\n', "needs exactly one of raw_value"),
        ('[[files]]\nguest_path = "/x"\nraw_value = "not base64!"\n', "raw_value must be base64"),
        ('[[http_service.checks]]\ninterval = "15"\n', 'interval needs a unit, such as "15s"'),
    ],
)
def test_bad_values_are_named(text: str, expected: str) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    ("written", "text"),
    [("500", "500ms"), ('"10s"', "10s"), ('"1m30s"', "1m30s"), ('"500ms"', "500ms")],
)
def test_a_bare_number_in_a_duration_is_milliseconds(written: str, text: str) -> None:
    config = parse_app_config(
        f"[[http_service.checks]]\ninterval = {written}\ntimeout = {written}\n"
    )

    check = config.machine_config("img").services[0].checks[0]

    assert (check.interval, check.timeout) == (text, text)


def test_wait_timeout_bare_number_is_milliseconds_but_kill_timeout_is_seconds() -> None:
    config = parse_app_config("kill_timeout = 10\n[deploy]\nwait_timeout = 90000\n")

    assert config.kill_timeout == 10.0
    assert config.deploy.wait_timeout == 90.0
    assert config.machine_config("img").stop_config is not None
    assert config.machine_config("img").stop_config.timeout == "10s"  # type: ignore[union-attr]


def test_check_fields_are_carried_to_the_machine_config() -> None:
    text = """[[http_service.checks]]
method = "head"
path = "/up"
protocol = "https"
tls_skip_verify = true
tls_server_name = "shop.example"
headers = { Host = "shop.example" }
"""
    check = parse_app_config(text).machine_config("img").services[0].checks[0]

    assert (check.method, check.path, check.protocol) == ("HEAD", "/up", "https")
    assert (check.tls_skip_verify, check.tls_server_name) == (True, "shop.example")
    assert check.headers == {"Host": "shop.example"}


def test_unknown_and_ignored_keys_are_warnings_naming_file_line_and_key() -> None:
    text = (
        'app = "shop"\nprimary_regoin = "ams"\n[http_service]\ninteral_port = 3000\n'
        "[experimental]\nauto_rollback = true\n"
    )

    config = parse_app_config(text, filename="apps/shop/fly.toml")

    assert config.warnings == (
        'apps/shop/fly.toml:2: unknown key "primary_regoin" ignored'
        ' (did you mean "primary_region"?)',
        'apps/shop/fly.toml:4: unknown key "interal_port" in [http_service] ignored'
        ' (did you mean "internal_port"?)',
        'apps/shop/fly.toml:6: "auto_rollback" in [experimental] is ignored: it has no effect on a'
        " Machines app",
    )
    assert config.machine_config("img").services[0].internal_port == 8080


def test_files_from_raw_value_and_local_path_reach_the_machine_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.ini").write_bytes(b"[app]\nmode = prod\n")
    (tmp_path / "fly.toml").write_text(
        '[[files]]\nguest_path = "/etc/app.ini"\nlocal_path = "conf/app.ini"\n'
        '[[files]]\nguest_path = "/etc/motd"\n'
        f'raw_value = "{base64.b64encode(b"hello").decode()}"\n'
    )

    files = load_app_config(tmp_path).machine_config("img").files

    assert [(f.guest_path, f.content) for f in files] == [
        ("/etc/app.ini", b"[app]\nmode = prod\n"),
        ("/etc/motd", b"hello"),
    ]
    assert isinstance(files[0], MachineFile)


def test_a_file_whose_source_is_empty_is_dropped_as_on_fly() -> None:
    text = '[[files]]\nguest_path = "/etc/old.conf"\nlocal_path = ""\n'

    assert parse_app_config(text).machine_config("img").files == []


def test_a_missing_local_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "fly.toml").write_text('[[files]]\nguest_path = "/a"\nlocal_path = "nope.txt"\n')

    with pytest.raises(ConfigError, match=r"local_path .*nope.txt cannot be read"):
        load_app_config(tmp_path)
