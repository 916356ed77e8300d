"""The engine adapter with the real libmodsecurity and CRS, on in-memory requests."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ferry.model.machine_waf import WafConfig
from ferry.waf.engine import (
    Headers,
    InlineEngine,
    ModSecurityCore,
    WafOutcome,
    WafRequest,
    WafRulesError,
)
from ferry.waf.rules import SCORE_RULE_ID, RuleFiles, build_rules, default_rule_files

HEADERS = ((b"Host", b"web.example"), (b"User-Agent", b"Mozilla/5.0"), (b"Accept", b"*/*"))


def request(
    uri: bytes, *, method: bytes = b"GET", body: bytes = b"", headers: Headers = HEADERS
) -> WafRequest:
    return WafRequest("req-1", ("192.0.2.7", 51000), ("127.0.0.1", 80), method, uri, "1.1",
                      headers, body)  # fmt: skip


@pytest.fixture(scope="module")
def engine() -> InlineEngine:
    return InlineEngine()


def inspect(
    engine: InlineEngine, config: WafConfig, req: WafRequest, response: bool = True
) -> tuple[int, WafOutcome]:
    async def go() -> tuple[int, WafOutcome]:
        inspection = await engine.request(config, req)
        answer = (200, "HTTP/1.1", ((b"Content-Type", b"text/html"),)) if response else None
        return inspection.status, await engine.finish(inspection, answer)

    return asyncio.run(go())


def test_the_rule_set_ends_with_ferrys_score_rule_and_the_apps_exclusions() -> None:
    files = default_rule_files()
    config = WafConfig(mode="block", paranoia=4, exclude_rules=[942100])
    text = build_rules(config, files, files.recommended.read_text(), os.listdir(files.crs_rules))
    assert "SecRuleEngine On" in text and "setvar:tx.paranoia_level=4" in text
    assert "SecRuleRemoveById 942100" in text
    assert text.rstrip().splitlines()[-1].startswith(f'SecAction "id:{SCORE_RULE_ID},phase:5')
    assert "REQUEST-910-IP-REPUTATION" not in text


def test_block_mode_asks_for_403_and_reports_every_matched_rule_and_the_score(
    engine: InlineEngine,
) -> None:
    status, outcome = inspect(engine, WafConfig(mode="block"), request(b"/?id=1%27%20OR%201=1--"))
    assert status == 403 and outcome.status == 403
    assert outcome.rule_ids == (942100, 949110)  # 949110: the blocking evaluation
    assert outcome.anomaly_score == 5


def test_detect_mode_never_blocks_but_reports_the_same_matches(engine: InlineEngine) -> None:
    status, outcome = inspect(engine, WafConfig(mode="detect"), request(b"/?id=1%27%20OR%201=1--"))
    assert status == 0 and outcome.status == 0
    assert outcome.rule_ids == (942100, 949110) and outcome.anomaly_score == 5


def test_benign_requests_match_nothing_even_at_paranoia_4(engine: InlineEngine) -> None:
    for config in (WafConfig(mode="block"), WafConfig(mode="block", paranoia=4)):
        status, outcome = inspect(engine, config, request(b"/products?id=42&sort=price"))
        assert (status, outcome) == (0, WafOutcome(0, (), 0))


def test_excluded_rules_do_not_match(engine: InlineEngine) -> None:
    config = WafConfig(mode="block", exclude_rules=[942100])
    status, outcome = inspect(engine, config, request(b"/?id=1%27%20OR%201=1--"))
    assert status == 0 and 942100 not in outcome.rule_ids


def test_request_bodies_are_inspected_up_to_the_limit(engine: InlineEngine) -> None:
    form = ((b"Content-Type", b"application/x-www-form-urlencoded"),)
    attack = b"q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    padded = b"pad=" + b"x" * 2000 + b"&" + attack
    config = WafConfig(mode="block", body_limit=1024)
    for body, blocked in ((attack, True), (padded, False)):  # the attack is past the limit
        headers = (*HEADERS, *form, (b"Content-Length", str(len(body)).encode()))
        req = request(b"/comment", method=b"POST", body=body[:1025], headers=headers)
        status, outcome = inspect(engine, config, req)
        assert (status == 403) is blocked, outcome


def test_raw_bytes_reach_the_engine_unchanged(engine: InlineEngine) -> None:
    """Not UTF-8, not decoded: the URI and header bytes as the client sent them."""
    req = request(b"/x?a=%c0%ae%c0%ae/etc/passwd", headers=(*HEADERS, (b"X-Odd", b"\xff\xfe")))
    _, outcome = inspect(engine, WafConfig(mode="detect", paranoia=4), req)
    assert outcome.rule_ids  # double-encoded traversal: CRS 920/930 rules see it


def test_header_values_reach_the_engine_without_surrounding_whitespace(
    engine: InlineEngine,
) -> None:
    """As a web server trims them: httptools hands ``Host: web.example  `` over with its
    trailing spaces, and 943110 would then call a same-site Referer off-domain."""
    padded = (
        (b"Host", b"web.example  "),
        (b"User-Agent", b"Mozilla/5.0\t"),
        (b"Accept", b"*/*"),
        (b"Referer", b"https://web.example/"),
    )
    req = request(b"/login?PHPSESSID=abc123", headers=padded)
    _, outcome = inspect(engine, WafConfig(mode="detect", paranoia=4), req)
    assert outcome.rule_ids == ()
    foreign = request(
        b"/login?PHPSESSID=abc123", headers=(*padded[:3], (b"Referer", b"https://evil.example/"))
    )
    _, outcome = inspect(engine, WafConfig(mode="detect", paranoia=4), foreign)
    assert 943110 in outcome.rule_ids  # the rule itself is live: an off-domain Referer


def test_a_rule_set_that_does_not_load_is_an_error_naming_the_parser_problem(
    tmp_path: Path,
) -> None:
    real = default_rule_files()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "REQUEST-901-BROKEN.conf").write_text("SecNotADirective On\n")
    core = ModSecurityCore(RuleFiles(real.recommended, real.unicode_mapping, real.crs_setup, rules))
    with pytest.raises(WafRulesError, match="does not load"):
        core.load(WafConfig(mode="block").model_dump_json())
