"""Pruning the sections above the paranoia level changes no verdict: the proof on the corpus.

The edge loads CRS without the sections its paranoia level skips
(``rules.prune_paranoia``); the differential's reference loads every file
whole. Every corpus request, through both, must give the same status, the
same matched rule ids in the same order, and the same anomaly score.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.waf_corpus import load_corpus
from bench.waf_reference import RequestParseError, parse_request
from ferry.model.machine_waf import WafConfig
from ferry.waf.engine import ModSecurityCore, WafOutcome, WafRequest, config_key
from ferry.waf.rules import default_rule_files, prune_paranoia

WHOLE = ModSecurityCore(prune=False)
PRUNED = ModSecurityCore(prune=True)


def outcome(core: ModSecurityCore, key: str, request: WafRequest) -> WafOutcome:
    txn, status = core.request(key, request)
    return core.finish(txn, status, (200, "HTTP/1.1", ((b"Content-Type", b"text/html"),)))


@pytest.mark.parametrize(("mode", "paranoia"), [("detect", 1), ("detect", 2), ("detect", 3),
                                                ("block", 1)])  # fmt: skip
def test_the_corpus_matches_the_same_rules_with_and_without_pruning(
    mode: str, paranoia: int
) -> None:
    key = config_key(WafConfig(mode=mode, paranoia=paranoia))  # type: ignore[arg-type]
    compared = matched = 0
    for entry in load_corpus():
        try:
            parsed = parse_request(entry.raw)
        except RequestParseError:
            continue
        request = WafRequest(entry.name, ("192.0.2.10", 40000), ("192.0.2.1", 80),
                             parsed.method, parsed.uri, parsed.version, parsed.headers,
                             parsed.body)  # fmt: skip
        whole, pruned = outcome(WHOLE, key, request), outcome(PRUNED, key, request)
        assert pruned == whole, entry.name
        compared += 1
        matched += bool(whole.rule_ids)
    assert compared >= 600 and matched >= 300  # the corpus ran, and rules fired


def test_sections_above_the_level_go_and_the_rest_stays() -> None:
    rules = default_rule_files().crs_rules
    text = (rules / "REQUEST-942-APPLICATION-ATTACK-SQLI.conf").read_text()
    pl1, pl4 = prune_paranoia(text, 1, rules), prune_paranoia(text, 4, rules)
    assert "id:942100" in pl1 and "id:942200" not in pl1  # 942200 is a paranoia 2 rule
    assert "id:942200" in pl4 and 'SecMarker "END-REQUEST-942-APPLICATION-ATTACK-SQLI"' in pl1
    scanner = (rules / "REQUEST-913-SCANNER-DETECTION.conf").read_text()
    assert f'"@pmFromFile {rules}/scanners-user-agents.data"' in prune_paranoia(scanner, 1, rules)


def test_a_section_holding_a_rule_no_guard_skips_is_kept() -> None:
    text = "\n".join([
        'SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt 2" "id:1,phase:1,pass,nolog,skipAfter:END-X"',
        'SecRule ARGS "@rx a" "id:2,phase:1,deny,chain"',
        '    SecRule ARGS "@rx b" "t:none"',
        'SecRule RESPONSE_STATUS "@rx 5" "id:3,phase:3,pass"',  # phase 3: no guard for it
        'SecMarker "END-X"',
    ])  # fmt: skip
    assert prune_paranoia(text, 1, Path("/")) == text
    guarded = text.replace('"id:3,phase:3,pass"', '"id:3,phase:1,pass"')
    assert "id:3" not in prune_paranoia(guarded, 1, Path("/"))
    assert "id:2" in prune_paranoia(guarded, 2, Path("/"))


def test_the_edges_rule_set_loads_at_every_level() -> None:
    for paranoia in (1, 2, 3, 4):
        PRUNED.load(config_key(WafConfig(mode="block", paranoia=paranoia)))
    assert os.path.isdir(default_rule_files().crs_rules)
