"""What `ferry launch` detects in a directory and the Dockerfile / fly.toml it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ferry.cli.launch import suggest_app_name
from ferry.config import parse_app_config
from ferry.config.generate import render_fly_toml, retarget_fly_toml
from ferry.deploy.scanner import (
    exposed_port,
    python_dependency_name,
    read_project,
    scan_project,
)
from ferry.errors import ConfigError


def test_a_dockerfile_is_used_as_it_is_with_its_exposed_port() -> None:
    source = scan_project({"Dockerfile": "FROM scratch\nEXPOSE 9000\n", "package.json": "{}"})
    assert (source.family, source.dockerfile, source.port) == ("Dockerfile", None, 9000)


def test_a_dockerfile_without_expose_gets_flyctls_default_port() -> None:
    assert scan_project({"Dockerfile": "FROM scratch\n"}).port == 8080


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("EXPOSE 3000", 3000),
        ("expose 53/udp 8081/tcp", 8081),
        ("EXPOSE $PORT\nEXPOSE 5000", 5000),
        ("EXPOSE 70000", None),
        ("RUN echo EXPOSE 80", None),
    ],
)
def test_exposed_port_reads_the_first_tcp_port(text: str, port: int | None) -> None:
    assert exposed_port(f"FROM scratch\n{text}\n") == port


def test_flask_requirements_give_a_flask_dockerfile_on_8080() -> None:
    files = {"requirements.txt": "# web\nFlask==3.0.2\ngunicorn\n", ".python-version": "3.11.9\n"}
    source = scan_project(files)
    assert (source.family, source.port) == ("Flask", 8080)
    assert source.dockerfile is not None
    assert "FROM python:3.11-bookworm AS builder" in source.dockerfile
    assert "RUN .venv/bin/pip install -r requirements.txt" in source.dockerfile
    assert '"--port=8080"' in source.dockerfile and "EXPOSE 8080" in source.dockerfile


def test_fastapi_pyproject_listens_on_8000_with_requires_python() -> None:
    pyproject = '[project]\nname = "api"\nrequires-python = ">=3.13"\n'
    pyproject += 'dependencies = ["fastapi[standard]>=0.110", "httpx"]\n'
    source = scan_project({"pyproject.toml": pyproject})
    assert (source.family, source.port) == ("FastAPI", 8000)
    assert source.dockerfile is not None
    assert "FROM python:3.13-slim-bookworm" in source.dockerfile
    assert 'fastapi", "run", "--port", "8000"]' in source.dockerfile


def test_poetry_project_installs_with_poetry() -> None:
    pyproject = '[tool.poetry.dependencies]\npython = "^3.12"\nflask = "*"\n'
    source = scan_project({"pyproject.toml": pyproject, "poetry.lock": ""})
    assert source.dockerfile is not None and "poetry install" in source.dockerfile


@pytest.mark.parametrize(
    ("requirements", "found"),
    [("requests\n", "none of"), ("flask\nfastapi\n", "more than one of")],
)
def test_python_without_exactly_one_framework_is_refused(requirements: str, found: str) -> None:
    with pytest.raises(ConfigError) as caught:
        scan_project({"requirements.txt": requirements})
    assert found in caught.value.message and "Dockerfile" in (caught.value.hint or "")


def test_python_dependency_names_lose_versions_extras_and_markers() -> None:
    assert python_dependency_name("Flask[async]>=3 ; python_version>'3'") == "flask"
    assert python_dependency_name("numpy~=1.19") == "numpy"


def test_node_project_uses_its_packager_and_build_script() -> None:
    package = (
        '{"scripts": {"start": "node server.js", "build": "tsc"}, "engines": {"node": ">=20"}}'
    )
    source = scan_project({"package.json": package, "yarn.lock": ""})
    assert (source.family, source.port, source.env) == ("NodeJS", 8080, {"PORT": "8080"})
    assert source.dockerfile is not None
    assert "ARG NODE_VERSION=20" in source.dockerfile
    assert "RUN yarn install && yarn run build" in source.dockerfile
    assert 'CMD ["yarn", "run", "start"]' in source.dockerfile


def test_node_without_start_script_is_refused_with_what_to_add() -> None:
    with pytest.raises(ConfigError) as caught:
        scan_project({"package.json": '{"scripts": {"test": "jest"}}'})
    assert '"start"' in caught.value.message


def test_deno_project_runs_its_entrypoint() -> None:
    source = scan_project({"deno.jsonc": "{}", "server.ts": "Deno.serve(() => new Response())"})
    assert (source.family, source.port) == ("Deno", 8080)
    assert source.dockerfile is not None
    assert 'CMD ["run", "-A", "./server.ts"]' in source.dockerfile


def test_an_empty_directory_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        scan_project({})
    assert "Dockerfile" in caught.value.message


def test_read_project_reads_only_the_scanned_files(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    (tmp_path / "secret.env").write_text("X=1")
    (tmp_path / "main.ts").write_bytes(b"\xff\xfe")
    assert read_project(tmp_path) == {"package.json": "{}"}


def test_rendered_fly_toml_parses_and_routes_to_the_port(tmp_path: Path) -> None:
    text = render_fly_toml("shop", "iad", 8000, env={"PORT": "8000"}, family="FastAPI")
    config = parse_app_config(text, base_dir=tmp_path)
    assert (config.app, config.primary_region) == ("shop", "iad")
    assert config.env == {"PORT": "8000"}
    assert config.services[0].value.internal_port == 8000
    assert config.services[0].value.autostop == "stop"
    assert config.build.image is None and config.build.dockerfile is None


def test_retarget_sets_app_and_region_and_keeps_the_rest() -> None:
    text = '# mine\napp = "old"\nkill_timeout = 5\n\n[env]\n  app = "not-this"\n'
    out = retarget_fly_toml(text, "new", "sin")
    parsed = tomllib.loads(out)
    assert parsed["app"] == "new" and parsed["primary_region"] == "sin"
    assert parsed["env"] == {"app": "not-this"} and parsed["kill_timeout"] == 5
    assert out.startswith('primary_region = "sin"\n# mine\napp = "new"\n')


@pytest.mark.parametrize(
    ("directory", "name"),
    [("My_Project", "my-project"), ("--x--", None), ("shop", "shop"), ("a" * 80, "a" * 63)],
)
def test_app_name_from_directory(directory: str, name: str | None) -> None:
    assert suggest_app_name(directory) == name
