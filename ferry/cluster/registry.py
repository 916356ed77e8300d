"""The cluster's OCI registry: CNCF Distribution (Debian ``docker-registry``), on loopback.

This module only writes its config, names its command and waits for it; the
cluster supervisor owns the process.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from ferry.errors import UnavailableError, ValidationError

__all__ = ["registry_command", "wait_registry_ready", "write_registry_config"]

_ALL_INTERFACES = ("", "0.0.0.0", "::", "[::]", "*")


def _check_listen(listen: str) -> None:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(
            f"registry listen address {listen!r} is not host:port",
            hint="use e.g. 127.0.0.1:5000",
        )
    if host in _ALL_INTERFACES:
        raise ValidationError(
            f"registry listen address {listen!r} would listen on all interfaces",
            hint="the registry has no auth: bind it to a specific address such as 127.0.0.1",
        )


def write_registry_config(root: Path, listen: str) -> Path:
    """Write ``root/config.yml``: filesystem storage in ``root/data``, no auth, deletes
    enabled, log level warn, HTTP on ``listen`` (``host:port``). Returns the path.

    Idempotent (overwrites). Raises ``ValidationError`` if ``listen`` is malformed or
    names all interfaces.
    """
    _check_listen(listen)
    data = root.absolute() / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = root.absolute() / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f'    rootdirectory: "{data}"\n'
        "  delete:\n"
        "    enabled: true\n"
        "  cache:\n"
        "    blobdescriptor: inmemory\n"
        "http:\n"
        f'  addr: "{listen}"\n'
        "health:\n"
        "  storagedriver:\n"
        "    enabled: false\n"
    )
    return config


def registry_command(config: Path) -> list[str]:
    """The argv that serves the registry with ``config``."""
    return ["docker-registry", "serve", str(config)]


def wait_registry_ready(url: str, timeout: float = 10.0) -> None:
    """Poll ``GET <url>/v2/`` until it answers 200. Blocking.

    Raises ``UnavailableError`` naming the url and the last problem after ``timeout`` s.
    """
    endpoint = url.rstrip("/") + "/v2/"
    deadline = time.monotonic() + timeout
    problem = "no answer"
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            try:
                response = client.get(endpoint)
                if response.status_code == 200:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"registry at {url} not ready after {timeout:.0f}s ({problem})",
                    hint="check the registry's log",
                )
            time.sleep(0.02)
