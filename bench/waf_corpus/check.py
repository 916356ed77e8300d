"""Check the corpus against the reference alone: do attacks hit their family, is benign quiet?

    python bench/waf_corpus/check.py [--json]

For every attack: the ids it matches at paranoia 4, and whether one of them
starts with a prefix of ``expect`` (its CRS family). For every benign
request: the ids it matches at paranoia 1 (expected: none). Prints the
misses; ``--json`` prints every entry's ids as well. Needs no edge.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.waf_corpus import Entry, load_corpus
from bench.waf_reference import WafReference
from ferry.model.machine_waf import WafConfig

__all__ = ["CorpusCheck", "check_corpus", "family_hit"]


@dataclass(frozen=True)
class CorpusCheck:
    """One entry's result: ids at PL4 (attacks) or PL1 (benign), and whether it is as expected."""

    entry: Entry
    rule_ids: frozenset[int]
    as_expected: bool


def family_hit(rule_ids: frozenset[int], prefixes: list[str]) -> bool:
    """True if some matched id starts with one of ``prefixes`` (949110 alone does not count)."""
    return any(
        str(rule_id).startswith(prefix)
        for rule_id in rule_ids
        if rule_id != 949110
        for prefix in prefixes
    )


def check_corpus(entries: list[Entry], pl4: WafReference, pl1: WafReference) -> list[CorpusCheck]:
    """Run every entry through the right reference and judge it against its expectation."""
    results: list[CorpusCheck] = []
    for entry in entries:
        if entry.kind == "attack":
            ids = pl4.evaluate(entry.raw).rule_ids
            hit = family_hit(ids, entry.expect) if entry.expect else not ids
            results.append(CorpusCheck(entry, ids, hit))
        else:
            ids = pl1.evaluate(entry.raw).rule_ids
            results.append(CorpusCheck(entry, ids, not ids))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="every entry's ids as JSON lines")
    args = parser.parse_args()
    pl4 = WafReference(WafConfig(mode="detect", paranoia=4))
    pl1 = WafReference(WafConfig(mode="detect", paranoia=1))
    results = check_corpus(load_corpus(), pl4, pl1)
    if args.json:
        for result in results:
            print(
                json.dumps(
                    {
                        "name": result.entry.name,
                        "ids": sorted(result.rule_ids),
                        "as_expected": result.as_expected,
                    }
                )
            )
        return
    families: dict[str, list[CorpusCheck]] = {}
    for result in results:
        families.setdefault(result.entry.family, []).append(result)
    for family, items in sorted(families.items()):
        bad = [r for r in items if not r.as_expected]
        print(f"{family:24} {len(items):4} entries, {len(bad):3} not as expected")
        for r in bad:
            level = "PL4" if r.entry.kind == "attack" else "PL1"
            print(
                f"    {r.entry.name}: {level} ids {sorted(r.rule_ids)} (expected "
                f"{r.entry.expect or 'none'})"
            )


if __name__ == "__main__":
    main()
