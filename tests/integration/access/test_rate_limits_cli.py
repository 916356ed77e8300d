"""`ferry server --rate-limit/--rate-burst` as an operator starts it, and a user's CLI
over the limit: 429 with Retry-After, and a sentence saying when to retry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..images import free_loopback_port


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[str]:
    """``ferry server`` with one request per 100 s, bursts of 2, per token; its URL."""
    port = free_loopback_port()
    home = tmp_path / "home"
    argv = [sys.executable, "-m", "ferry", "server", "--home", str(home)]
    argv += ["--listen", f"127.0.0.1:{port}", "--rate-limit", "0.01", "--rate-burst", "2"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise AssertionError("ferry server did not answer in 20 s")
        yield url
    finally:
        process.terminate()
        process.wait(15)


def test_a_token_over_the_servers_limit_is_told_when_to_retry(
    limited_server: str, tmp_path: Path
) -> None:
    admin = (tmp_path / "home" / "server" / "admin-token").read_text().strip()
    created = httpx.post(
        limited_server + "/v1/tokens",
        json={"kind": "org", "org_slug": "personal", "name": "ci"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    env = {**os.environ, "FERRY_API_URL": limited_server, "FERRY_API_TOKEN": token}
    statuses = []
    for _ in range(3):  # bursts of 2, then one per 100 s
        answer = httpx.get(
            limited_server + "/v1/apps", headers={"Authorization": f"Bearer {token}"}
        )
        statuses.append(answer.status_code)
    assert statuses == [200, 200, 429]
    assert 90 <= int(answer.headers["Retry-After"]) <= 100
    assert "too many requests" in answer.json()["error"]
    cli = subprocess.run(
        [sys.executable, "-m", "ferry", "apps", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 1
    assert re.search(r"retry in (9\d|100) s", cli.stderr), cli.stderr
    assert "Traceback" not in cli.stderr
    for _ in range(3):  # the operator is not limited
        assert (
            httpx.get(
                limited_server + "/v1/apps", headers={"Authorization": f"Bearer {admin}"}
            ).status_code
            == 200
        )


def test_a_bad_limit_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "ferry", "server", "--home", str(tmp_path / "home")]
    argv += ["--listen", f"127.0.0.1:{free_loopback_port()}", "--rate-burst", "0"]
    started = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode != 0
    assert "invalid rate limit" in started.stderr and "burst" in started.stderr
