"""Certificates by ACME in the embedded cluster, as a user sees them: `ferry certs add`, the
cluster's Pebble issues, the edges serve the name over HTTPS (also after an edge restart),
`ferry certs remove` stops it (docs/certificates.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import cluster_pid, demo_dir, ferry, until

pytestmark = pytest.mark.e2e


def curl(cluster: ClusterSettings, region: str, *args: str) -> subprocess.CompletedProcess[str]:
    return ferry(cluster, "region", "exec", region, "--", "curl", "-sS", "-m", "5", *args)


def test_a_custom_name_gets_a_certificate_from_the_cluster_ca_and_is_served_over_https(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    app, name = f"certs{unique}", f"www.c{unique}.example"
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{app}"')
    (app_dir / "fly.toml").write_text(toml)
    deployed = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    until(
        "the app answers at its cluster name",
        lambda: "region=" in curl(cluster, "ams", f"https://{app}.{cluster.domain}/").stdout,
        30,
    )

    started = time.monotonic()
    added = ferry(cluster, "certs", "add", name, "-a", app)
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"Added {name} to {app}" in added.stdout

    def issued() -> dict[str, Any] | None:
        shown = ferry(cluster, "certs", "show", name, "-a", app, "--json")
        assert shown.returncode == 0, shown.stderr
        cert: dict[str, Any] = json.loads(shown.stdout)
        assert not cert.get("last_error"), cert
        return cert if cert["configured"] else None

    cert = until(f"{name} issued", issued, 60)
    issued_after = time.monotonic() - started
    assert cert["client_status"] == "Ready"
    assert cert["expires_at"]

    # users trust the cluster's ACME CA with the root `ferry cluster ca --acme` prints
    printed = ferry(cluster, "cluster", "ca", "--acme")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert printed.stdout != (cluster.home / "tls" / "ca.pem").read_text()
    root = tmp_path / "acme-root.pem"
    root.write_text(printed.stdout)

    attempts: list[str] = []

    def https_answer() -> str:
        answer = curl(cluster, "ams", "--cacert", str(root), f"https://{name}/")
        attempts.append(f"{answer.returncode}:{answer.stderr.strip()[:80]}")
        return answer.stdout

    root_at = time.monotonic() - started
    answer = until("the app answers over HTTPS at the custom name", https_answer, 30)
    first_https_after = time.monotonic() - started
    attempts_before_answer = list(attempts)
    assert "region=ams" in answer, answer
    # curl verified the chain against Pebble's root alone (not the cluster CA)
    untrusting = curl(
        cluster, "ams", "--cacert", str(cluster.home / "tls" / "ca.pem"), f"https://{name}/"
    )
    assert untrusting.returncode == 60, untrusting.stdout + untrusting.stderr

    checked = ferry(cluster, "certs", "check", name, "-a", app, "--json")
    assert checked.returncode == 0, checked.stderr
    check = json.loads(checked.stdout)
    assert check["configured"] is True and check["client_status"] == "Ready", check
    assert "resolves to the cluster's edges" in check["check"]["reason"], check

    # the region's edge killed -9: the supervisor restarts it, and it serves the name again
    pid = cluster_pid(cluster, "proxy", "--region", "ams")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    until(
        "a new ams edge",
        lambda: cluster_pid(cluster, "proxy", "--region", "ams") not in (None, pid),
        30,
    )
    answer = until("HTTPS at the custom name after the edge restart", https_answer, 30)
    assert "region=ams" in answer, answer

    removed = ferry(cluster, "certs", "remove", name, "-a", app)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    # straight to the edge (the name no longer resolves either): the edge refuses the name
    direct = ("--resolve", f"{name}:443:{cluster.plan.edge_address}", "--cacert", str(root))
    refused = until(
        "the edge stops serving the name",
        lambda: (r := curl(cluster, "ams", *direct, f"https://{name}/")).returncode == 35 and r,
        30,
    )
    assert "unrecognized name" in refused.stderr.lower(), refused.stderr
    shown = ferry(cluster, "certs", "show", name, "-a", app, "--json")
    assert shown.returncode != 0
    # the app's own name is served as before
    assert "region=ams" in curl(cluster, "ams", f"https://{app}.{cluster.domain}/").stdout
    on_server = datetime.fromisoformat(cert["updated_at"]) - datetime.fromisoformat(
        cert["created_at"]
    )
    print(
        f"\nACME in the cluster (client side): `certs add` -> issued (seen by `certs show`) "
        f"{issued_after:.2f}s (on the server: {on_server.total_seconds():.2f}s); "
        f"root fetched at {root_at:.2f}s; -> first HTTPS answer {first_https_after:.2f}s "
        f"after {len(attempts_before_answer)} curl(s): {attempts_before_answer}"
    )
