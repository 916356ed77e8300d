"""`protocol = "https"` checks carry Fly's TLS keys through to the machine config."""

from __future__ import annotations

from ferry.config import parse_app_config

TOML = """
[http_service]
internal_port = 8443

[[http_service.checks]]
path = "/health"
protocol = "https"
tls_skip_verify = true
tls_server_name = "app.internal"
"""


def test_tls_keys_of_an_https_check_are_kept() -> None:
    config = parse_app_config(TOML)
    (scoped,) = config.services
    service = scoped.value
    (check,) = service.checks
    assert check.protocol == "https"
    assert check.tls_skip_verify is True
    assert check.tls_server_name == "app.internal"


def test_tls_keys_default_to_verifying_the_address() -> None:
    config = parse_app_config(
        TOML.replace("tls_skip_verify = true\n", "").replace(
            'tls_server_name = "app.internal"\n', ""
        )
    )
    (scoped,) = config.services
    service = scoped.value
    (check,) = service.checks
    assert check.tls_skip_verify is False and check.tls_server_name is None
