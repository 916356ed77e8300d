"""HTTPS in the embedded cluster, as a user in a region sees it: the cluster CA, force_https."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e


def curl(cluster: ClusterSettings, region: str, *args: str) -> subprocess.CompletedProcess[str]:
    return ferry(cluster, "region", "exec", region, "--", "curl", "-sS", "-m", "5", *args)


def test_https_works_out_of_the_box_in_a_region_and_force_https_redirects(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "secure"')
    toml = toml.replace(
        "  internal_port = 8080\n", "  internal_port = 8080\n  force_https = true\n"
    )
    (app_dir / "fly.toml").write_text(toml)
    result = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr

    deadline = time.monotonic() + 20
    answer = curl(cluster, "ams", "https://secure.ferry.test/")
    while "region=" not in answer.stdout and time.monotonic() < deadline:
        time.sleep(0.2)  # until the edge has the new machine in its table; bounded
        answer = curl(cluster, "ams", "https://secure.ferry.test/")
    # curl verified the edge's certificate with the cluster CA `region exec` trusts
    assert "region=ams" in answer.stdout, answer.stdout + answer.stderr

    redirect = curl(
        cluster, "ams", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
        "http://secure.ferry.test/some/path?q=1",
    )  # fmt: skip
    assert redirect.stdout == "301 https://secure.ferry.test/some/path?q=1", redirect.stderr

    # from another region, over the WAN to ams's machine, HTTPS too
    far = curl(cluster, "iad", "https://secure.ferry.test/")
    assert "region=ams" in far.stdout, far.stdout + far.stderr

    printed = ferry(cluster, "cluster", "ca")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (cluster.home / "tls" / "ca.pem").read_text()
    assert printed.stdout.startswith("-----BEGIN CERTIFICATE-----")
    # without the cluster CA, a client refuses the edge's certificate
    untrusting = ferry(
        cluster, "region", "exec", "ams", "--", "env", "-u", "CURL_CA_BUNDLE",
        "-u", "SSL_CERT_FILE", "curl", "-sS", "-m", "5", "https://secure.ferry.test/",
    )  # fmt: skip
    assert untrusting.returncode == 60, untrusting.stdout + untrusting.stderr
