"""The WAF differential through the cluster's real edge: a sample of the corpus, zero differences.

An app deployed with ``[waf] mode = "detect"``, ``paranoia = 4``; about sixty
corpus requests (every family, and every request that exposes a modelled
connector mistake) sent as exact bytes from inside its region, over HTTP and
over HTTPS; the rule ids in ``ferry waf events`` compared with libmodsecurity
run in-process on the same bytes (``bench/waf_differential.py``). The full
corpus is ``bench/waf_differential.py`` on ``make up`` (bench/RESULTS.md).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.waf_corpus import Entry, load_corpus
from bench.waf_differential import (
    SendResult,
    cli_events,
    format_report,
    region_sender,
    run_differential,
)
from bench.waf_reference import WafReference
from ferry.cluster.settings import ClusterSettings
from ferry.model.machine_waf import WafConfig
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e

APP = "wafdiff"
#: The requests that tell a faithful connector from a mistaken one (bench/waf_corpus/README.md).
PROBES = (
    "args-padded-host-same-site-session-link",  # header values trimmed
    "args-loopback-exemption-probe",  # REMOTE_ADDR is the TCP peer
    "args-referer-fullwidth-xss",  # bytes, not UTF-8 re-encoded
    "lfi-path-005",  # the path as sent, not decoded
    "protocol-enforcement-absolute-userinfo",  # the absolute form kept
    "benign-http-http-1-0",  # the version as sent
    "benign-api-json-000",  # the body handed over
    "args-over-body-limit-tail-sqli",  # the body limit
)


def sample() -> list[Entry]:
    """Every family's first, middle and last sendable entry (spread over its payloads),
    plus ``PROBES``: about sixty requests, deterministic."""
    chosen: dict[str, Entry] = {}
    families: dict[str, list[Entry]] = {}
    entries = [e for e in load_corpus() if e.routable and e.sendable]
    for entry in entries:
        families.setdefault(entry.family, []).append(entry)
    for members in families.values():
        for index in {0, len(members) // 2, len(members) - 1}:
            chosen[members[index].name] = members[index]
    for entry in entries:
        if entry.name in PROBES:
            chosen[entry.name] = entry
    return list(chosen.values())


@pytest.fixture()
def cli_env(cluster: ClusterSettings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``ferry`` command the driver runs, pointed at this cluster (as the operator)."""
    monkeypatch.setenv("FERRY_HOME", str(cluster.home))
    monkeypatch.setenv("FERRY_API_URL", cluster.api_url)
    monkeypatch.setenv("FERRY_API_TOKEN", cluster.token_path.read_text().strip())
    return [sys.executable, "-m", "ferry"]


def test_the_edge_matches_exactly_what_modsecurity_matches_on_the_same_bytes(
    cluster: ClusterSettings, tmp_path: Path, cli_env: list[str]
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{APP}"')
    toml += '\n[waf]\n  mode = "detect"\n  paranoia = 4\n'
    (app_dir / "fly.toml").write_text(toml)
    deployed = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    status = json.loads(ferry(cluster, "cluster", "status", "--json").stdout)
    host = f"{APP}.{status['domain']}"
    http = region_sender(cli_env, "ams", (status["edge_address"], 80))
    https = region_sender(cli_env, "ams", (status["edge_address"], 443), tls_name=host)
    events = cli_events(cli_env, APP)
    _wait_until_inspected(http, events, host)

    entries = sample()
    assert len(entries) >= 50 and len({e.family for e in entries}) == 21
    with WafReference(WafConfig(mode="detect", paranoia=4)) as reference:
        started = time.monotonic()
        for send in (http, https):
            report = run_differential(
                entries,
                app_host=host,
                send=send,
                fetch_events=events,
                reference=reference,
                wait_seconds=20,
            )
            assert report.sent == len(entries), format_report(report)
            assert not report.differences and not report.unanswered, format_report(report)
        assert time.monotonic() - started < 90


def _wait_until_inspected(
    send: Callable[[list[tuple[str, bytes]]], list[SendResult]],
    events: Callable[[], list[dict[str, object]]],
    host: str,
) -> None:
    """Until the edge has the machine and has compiled the app's rule set: an attack's
    request id shows up in the app's WAF events (30 s at most)."""
    attack = (
        f"GET /?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + 30
    sent: set[str] = set()
    while time.monotonic() < deadline:
        (result,) = send([("probe", attack)])
        if result.request_id:
            sent.add(result.request_id)
        if sent & {str(e.get("request_id")) for e in events()}:
            return
        time.sleep(0.5)  # the edge ships events every second; bounded by the deadline
    pytest.fail(f"no WAF event for {len(sent)} attacks in 30 s: the app is not inspected")
