"""What `ferry launch` finds in a source directory, and the Dockerfile it writes for it.

The decisions follow flyctl's scanners: a Dockerfile is used as it is; otherwise
a Python (pyproject.toml / requirements.txt with FastAPI, Flask or Streamlit),
Node (package.json with a ``start`` script) or Deno (deno.json / deno.jsonc)
project gets a Dockerfile written for it. Where flyctl falls back to
buildpacks (no supported framework, no ``start`` script) Ferry has no
buildpacks, so it refuses with a message saying what to add.

``scan_project`` is pure: it reads a ``ProjectFiles`` snapshot (file name →
text of the few files that matter), which ``read_project`` takes from disk.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ferry.errors import ConfigError

__all__ = [
    "DEFAULT_PORT",
    "ProjectFiles",
    "SourceInfo",
    "exposed_port",
    "read_project",
    "scan_project",
]

#: flyctl's default internal port for the projects it detects (FastAPI and Streamlit differ).
DEFAULT_PORT = 8080
DEFAULT_PYTHON = "3.12"
DEFAULT_NODE = "lts"
DENO_VERSION = "2.4.5"

#: The files the scanner looks at; nothing else is read.
SCANNED_FILES = (
    "Dockerfile",
    "requirements.txt",
    "pyproject.toml",
    "poetry.lock",
    ".python-version",
    "package.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "deno.json",
    "deno.jsonc",
    "main.ts",
    "index.ts",
    "app.ts",
    "server.ts",
    "mod.ts",
)
_DENO_ENTRYPOINTS = ("main.ts", "index.ts", "app.ts", "server.ts", "mod.ts")
_PY_FRAMEWORKS = {"fastapi": 8000, "flask": 8080, "streamlit": 8501}
_EXPOSE = re.compile(r"^\s*EXPOSE\s+(.+?)\s*$", re.IGNORECASE | re.MULTILINE)

ProjectFiles = dict[str, str]


@dataclass(frozen=True)
class SourceInfo:
    """What was detected: the family (``Dockerfile``, ``FastAPI``, ``NodeJS`` …), the
    Dockerfile text to write (``None`` when the project has its own), the internal
    port the app listens on, and ``[env]`` entries fly.toml should carry."""

    family: str
    dockerfile: str | None
    port: int
    env: dict[str, str] = field(default_factory=dict)


def read_project(directory: Path) -> ProjectFiles:
    """The scanned files that exist in ``directory`` (not its subdirectories), as text.

    Blocking. A file that is not UTF-8 is left out (the scanner never needs binary files).
    """
    found: ProjectFiles = {}
    for name in SCANNED_FILES:
        path = directory / name
        if not path.is_file():
            continue
        try:
            found[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return found


def scan_project(files: ProjectFiles) -> SourceInfo:
    """Detect the project in ``files`` (see the module docstring). Pure.

    Raises ``ConfigError`` when nothing is recognised, or when a project is
    recognised but Ferry cannot write a Dockerfile for it (the message says why).
    """
    if "Dockerfile" in files:
        port = exposed_port(files["Dockerfile"])
        return SourceInfo("Dockerfile", None, port if port is not None else DEFAULT_PORT)
    if "deno.json" in files or "deno.jsonc" in files:
        return _deno(files)
    if "pyproject.toml" in files or "requirements.txt" in files:
        return _python(files)
    if "package.json" in files:
        return _node(files)
    raise ConfigError(
        "could not find a Dockerfile, nor detect a Python, Node or Deno project here",
        hint="write a Dockerfile (ferry launch uses it as it is), or run ferry launch "
        "where your requirements.txt, pyproject.toml, package.json or deno.json is",
    )


def exposed_port(dockerfile: str) -> int | None:
    """The first TCP port of the Dockerfile's first ``EXPOSE`` that names one, else ``None``.

    ``EXPOSE 8080``, ``EXPOSE 8080/tcp 9090`` → 8080; ``EXPOSE 53/udp`` and
    ``EXPOSE $PORT`` name no TCP port Ferry can read.
    """
    for match in _EXPOSE.finditer(dockerfile):
        for word in match.group(1).split():
            number, _, protocol = word.partition("/")
            if protocol.lower() not in ("", "tcp") or not number.isdigit():
                continue
            port = int(number)
            if 1 <= port <= 65535:
                return port
    return None


# -- Python -------------------------------------------------------------------


def python_dependency_name(spec: str) -> str:
    """``"Flask[async]>=3.0 ; python_version>'3'"`` → ``flask``: the bare package name."""
    name = spec.split(";", 1)[0].strip().lower()
    return re.split(r"[\s\[<>=~!@(]", name, maxsplit=1)[0]


def _python(files: ProjectFiles) -> SourceInfo:
    style, deps, requires = _python_dependencies(files)
    frameworks = [name for name in _PY_FRAMEWORKS if name in deps]
    if len(frameworks) != 1:
        found = "more than one of" if frameworks else "none of"
        raise ConfigError(
            f"detected a Python project, but it uses {found} FastAPI, Flask and Streamlit, "
            "the frameworks ferry launch writes a Dockerfile for",
            hint="write a Dockerfile for it; ferry launch then uses it as it is",
        )
    framework = frameworks[0]
    if framework == "streamlit":
        # flyctl searches the sources for the file that imports streamlit; Ferry only
        # reads the top-level files, so the entry point is not known.
        raise ConfigError(
            "detected a Streamlit project: ferry launch cannot tell which file to run",
            hint="write a Dockerfile whose CMD runs `streamlit run YOUR_APP.py`",
        )
    version = _python_version(files, requires)
    return SourceInfo(
        {"fastapi": "FastAPI", "flask": "Flask"}[framework],
        _python_dockerfile(version, style, framework),
        _PY_FRAMEWORKS[framework],
    )


def _python_dependencies(files: ProjectFiles) -> tuple[str, set[str], str | None]:
    """``(style, dependency names, requires-python)``; style is poetry, pep621 or pip."""
    if "pyproject.toml" in files:
        try:
            project = tomllib.loads(files["pyproject.toml"])
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"pyproject.toml: syntax error: {exc}") from None
        poetry = project.get("tool", {}).get("poetry", {}).get("dependencies")
        if "poetry.lock" in files and isinstance(poetry, dict):
            deps = {python_dependency_name(name) for name in poetry}
            python = poetry.get("python")
            return "poetry", deps, python if isinstance(python, str) else None
        table = project.get("project", {})
        listed = table.get("dependencies") if isinstance(table, dict) else None
        if isinstance(listed, list):
            requires = table.get("requires-python")
            deps = {python_dependency_name(str(spec)) for spec in listed}
            return "pep621", deps, requires if isinstance(requires, str) else None
    if "requirements.txt" in files:
        lines = files["requirements.txt"].splitlines()
        deps = {
            python_dependency_name(line)
            for line in lines
            if line.strip() and not line.lstrip().startswith(("#", "-"))
        }
        return "pip", deps, None
    raise ConfigError(
        "pyproject.toml lists no dependencies ([project] dependencies or "
        "[tool.poetry.dependencies])",
        hint="add them, or write a Dockerfile",
    )


def _python_version(files: ProjectFiles, requires: str | None) -> str:
    """``X.Y`` from .python-version, then requires-python (``>=3.11`` → 3.11), else 3.12."""
    for text in (files.get(".python-version"), requires):
        if text:
            match = re.search(r"\d+\.\d+", text)
            if match:
                return match.group(0)
    return DEFAULT_PYTHON


def _python_dockerfile(version: str, style: str, framework: str) -> str:
    install = {
        "pip": "COPY requirements.txt ./\nRUN .venv/bin/pip install -r requirements.txt",
        "pep621": "COPY pyproject.toml ./\nRUN .venv/bin/pip install .",
        "poetry": "COPY pyproject.toml poetry.lock ./\n"
        "RUN pip install poetry && POETRY_VIRTUALENVS_IN_PROJECT=true poetry install --no-root",
    }[style]
    command = {
        "fastapi": '["/app/.venv/bin/fastapi", "run", "--port", "8000"]',
        "flask": '["/app/.venv/bin/flask", "run", "--host=0.0.0.0", "--port=8080"]',
    }[framework]
    return (
        "# Written by `ferry launch` for a Python project; edit it as you need.\n"
        f"FROM python:{version}-bookworm AS builder\n"
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1\n"
        "WORKDIR /app\n"
        "RUN python -m venv .venv\n"
        f"{install}\n"
        "\n"
        f"FROM python:{version}-slim-bookworm\n"
        "ENV PYTHONUNBUFFERED=1\n"
        "WORKDIR /app\n"
        "COPY --from=builder /app/.venv .venv/\n"
        "COPY . .\n"
        f"EXPOSE {_PY_FRAMEWORKS[framework]}\n"
        f"CMD {command}\n"
    )


# -- Node ---------------------------------------------------------------------


def _node(files: ProjectFiles) -> SourceInfo:
    try:
        package = json.loads(files["package.json"])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"package.json: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    scripts = package.get("scripts") if isinstance(package, dict) else None
    if not isinstance(scripts, dict) or "start" not in scripts:
        raise ConfigError(
            'detected a Node project, but package.json has no "start" script',
            hint='add one (e.g. "start": "node server.js"), or write a Dockerfile',
        )
    packager = "yarn" if "yarn.lock" in files else "pnpm" if "pnpm-lock.yaml" in files else "npm"
    engines = package.get("engines")
    wanted = engines.get("node") if isinstance(engines, dict) else None
    match = re.search(r"\d+(\.\d+){0,2}", wanted) if isinstance(wanted, str) else None
    version = match.group(0) if match else DEFAULT_NODE
    return SourceInfo(
        "NodeJS",
        _node_dockerfile(version, packager, build="build" in scripts),
        DEFAULT_PORT,
        {"PORT": str(DEFAULT_PORT)},
    )


def _node_dockerfile(version: str, packager: str, *, build: bool) -> str:
    enable = "RUN corepack enable\n" if packager != "npm" else ""
    install = f"RUN {packager} install" + (f" && {packager} run build" if build else "")
    prune = {
        "npm": "RUN npm prune --omit=dev",
        "yarn": "RUN yarn install --production",
        "pnpm": "RUN pnpm prune --prod",
    }[packager]
    return (
        "# Written by `ferry launch` for a Node project; edit it as you need.\n"
        f"ARG NODE_VERSION={version}\n"
        "FROM node:${NODE_VERSION}-slim AS builder\n"
        f"{enable}"
        "WORKDIR /app\n"
        "COPY . .\n"
        f"{install}\n"
        "\n"
        "FROM node:${NODE_VERSION}-slim\n"
        f"{enable}"
        "WORKDIR /app\n"
        "COPY --from=builder /app /app\n"
        "ENV NODE_ENV=production\n"
        f"{prune}\n"
        f"EXPOSE {DEFAULT_PORT}\n"
        f'CMD ["{packager}", "run", "start"]\n'
    )


# -- Deno ---------------------------------------------------------------------


def _deno(files: ProjectFiles) -> SourceInfo:
    entrypoint = next((name for name in _DENO_ENTRYPOINTS if name in files), "main.ts")
    dockerfile = (
        "# Written by `ferry launch` for a Deno project; edit it as you need.\n"
        f"ARG DENO_VERSION={DENO_VERSION}\n"
        "FROM denoland/deno:debian-${DENO_VERSION}\n"
        "WORKDIR /app\n"
        "COPY . .\n"
        f"RUN deno cache ./{entrypoint}\n"
        f"EXPOSE {DEFAULT_PORT}\n"
        'ENTRYPOINT ["deno"]\n'
        f'CMD ["run", "-A", "./{entrypoint}"]\n'
    )
    return SourceInfo("Deno", dockerfile, DEFAULT_PORT, {"PORT": str(DEFAULT_PORT)})
