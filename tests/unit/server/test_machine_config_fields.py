"""Every field of Fly's machine config is honoured or refused by name: nothing is dropped."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from .conftest import Api

IMAGE = "registry.local/web:1"
HTTP = {"port": 80, "handlers": ["http"]}


def service(**fields: Any) -> dict[str, Any]:
    return {"internal_port": 8080, "ports": [HTTP], **fields}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"mounts": [{"volume": "vol_1", "path": "/data", "size_gb_limit": 9}]},
            "config.mounts.0: size_gb_limit is not supported yet",
        ),
        (
            {"statics": [{"guest_path": "/p", "url_prefix": "/s", "tigris_bucket": "b"}]},
            "config.statics.0: tigris_bucket is not supported yet",
        ),
        ({"statics": [{"guest_path": "/p", "url_prefix": "/s"}]}, "pinned by digest"),
        ({"metrics": {"port": 9091, "path": "/metrics"}}, "config: metrics is not supported"),
        ({"schedule": "hourly"}, "config: schedule is not supported yet"),
        ({"standbys": ["3d8d1a2b4c5e6f"]}, "config: standbys is not supported yet"),
        ({"dns": {"skip_registration": True}}, "config: dns is not supported yet"),
        ({"processes": [{"cmd": ["x"]}]}, "config: processes is not supported yet"),
        ({"init": {"swap_size_mb": 512}}, "config.init: swap_size_mb is not supported yet"),
        ({"guest": {"cpus": 1, "kernel_args": ["quiet"]}}, "config.guest: kernel_args is not"),
        (
            {"services": [service(protocol="udp")]},
            'config.services.0.protocol: protocol "udp" is not supported yet',
        ),
        (
            {
                "services": [
                    {"internal_port": 8080, "ports": [{"port": 8443, "handlers": ["tls", "http"]}]}
                ]
            },
            'config.services.0.ports.0: handlers ["tls", "http"] are served on port 443 only',
        ),
        (
            {"services": [{"internal_port": 8080, "ports": [{"port": 80, "force_https": True}]}]},
            'config.services.0.ports.0: force_https needs the "http" handler on the same port',
        ),
        (
            {
                "services": [
                    {"internal_port": 8080, "ports": [{**HTTP, "tls_options": {"alpn": ["h2"]}}]}
                ]
            },
            'config.services.0.ports.0: tls_options.alpn = ["h2"] is not supported by Ferry',
        ),
        (
            {"files": [{"guest_path": "/etc/key", "secret_name": "KEY"}]},
            "config.files.0: secret_name is not supported yet",
        ),
        ({"files": [{"guest_path": "relative", "raw_value": "aGk="}]}, "guest_path must be an"),
        ({"files": [{"guest_path": "/a", "raw_value": "%%%"}]}, "raw_value must be base64"),
        ({"flux_capacitor": True}, "config: unknown field 'flux_capacitor'"),
        ({"guest": {"cpus": 1, "turbo": True}}, "config.guest: unknown field 'turbo'"),
    ],
)
def test_a_field_ferry_does_not_do_is_400_naming_it(
    api: Api, config: dict[str, Any], expected: str
) -> None:
    api.register_host()
    api.create_app()

    response = api.client.post("/v1/apps/web/machines", json={"config": {"image": IMAGE, **config}})

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
    assert api.client.get("/v1/apps/web/machines").json() == []


def test_an_update_with_a_refused_field_is_400_and_changes_nothing(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()

    response = api.client.post(
        f"/v1/apps/web/machines/{machine['id']}",
        json={"config": {"image": "registry.local/web:2", "volumes": [{"volume": "v"}]}},
    )

    assert response.status_code == 400 and "volumes" in response.json()["error"]
    current = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    assert current["config"]["image"] == IMAGE


def test_empty_values_of_refused_fields_ask_for_nothing_and_are_accepted(api: Api) -> None:
    api.register_host()
    api.create_app()

    machine = api.create_machine(
        config={
            "image": IMAGE,
            "mounts": [],
            "statics": None,
            "dns": {},
            "schedule": "",
            "init": {"swap_size_mb": 0},
        }
    )

    assert machine["config"]["mounts"] == []


def test_a_machine_stored_by_an_older_ferry_still_loads(api: Api) -> None:
    """Configs read back (store, agent, edge) are parsed leniently; only requests are strict."""
    from ferry.model import MachineConfig

    legacy = {"image": IMAGE, "services": [{"ports": [{"port": 443, "handlers": ["tls", "http"]}]}]}

    config = MachineConfig.model_validate({**legacy, "someday": 1})

    assert config.services[0].ports[0].handlers == ["tls", "http"]


def test_files_and_check_fields_round_trip_through_the_api(api: Api) -> None:
    api.register_host()
    api.create_app()
    raw = base64.b64encode(b"listen 8080\n").decode()
    check = {
        "type": "http",
        "port": 8080,
        "method": "HEAD",
        "path": "/up",
        "protocol": "https",
        "tls_skip_verify": True,
        "tls_server_name": "web.example",
    }

    machine = api.create_machine(
        config={
            "image": IMAGE,
            "files": [{"guest_path": "/etc/app.conf", "raw_value": raw}],
            "checks": {"up": check},
        }
    )
    fetched = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()

    assert fetched["config"]["files"] == [{"guest_path": "/etc/app.conf", "raw_value": raw}]
    assert {k: fetched["config"]["checks"]["up"][k] for k in check} == check
