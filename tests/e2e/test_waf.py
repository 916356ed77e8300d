"""``[waf]`` in a deployed app: the edge blocks attacks; `ferry waf events` lists them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e

ATTACK = "http://guarded.ferry.test/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"


def curl(cluster: ClusterSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return ferry(cluster, "region", "exec", "ams", "--", "curl", "-s", "-m", "5", *args)


def test_a_deployed_apps_waf_blocks_attacks_and_reports_them(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "guarded"')
    toml += '\n[waf]\n  mode = "block"\n  paranoia = 2\n'
    (app_dir / "fly.toml").write_text(toml)
    deployed = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    deadline = time.monotonic() + 30
    answer = curl(cluster, "-i", "-A", "Mozilla/5.0", ATTACK)
    while not answer.stdout.startswith("HTTP/1.1 403") and time.monotonic() < deadline:
        time.sleep(0.3)  # the edge sees the machine, then compiles the rule set
        answer = curl(cluster, "-i", "-A", "Mozilla/5.0", ATTACK)
    head, _, body = answer.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 403"), answer.stdout
    request_id = next(
        line.split(": ", 1)[1] for line in head.splitlines() if line.startswith("Fly-Request-Id")
    )
    assert request_id in body and "941" not in body
    benign = curl(cluster, "-A", "Mozilla/5.0", "http://guarded.ferry.test/")
    assert "region=ams" in benign.stdout

    events: list[dict[str, object]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        shown = ferry(cluster, "waf", "events", "-a", "guarded", "--json", "--since", "10m")
        assert shown.returncode == 0, shown.stderr
        events = json.loads(shown.stdout)
        if any(e["request_id"] == request_id for e in events):
            break
        time.sleep(0.5)  # the edge ships events every second
    (event,) = [e for e in events if e["request_id"] == request_id]
    assert event["action"] == "blocked" and event["status"] == 403
    rule_ids = event["rule_ids"]
    assert isinstance(rule_ids, list) and 949110 in rule_ids
    assert all(isinstance(i, int) for i in rule_ids)
