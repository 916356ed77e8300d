"""An app's ``WafConfig`` -> the SecLanguage rule set the engine loads. Pure (reads no files).

The set is what a reference deployment of ModSecurity runs: the engine
settings of ``modsecurity.conf-recommended`` (minus the directives v3 refuses
and the Apache-only audit log), the CRS set-up with the app's paranoia level
and thresholds, every CRS rule file but IP reputation (this libmodsecurity
is built without GeoIP), then the app's exclusions. The edge and the
differential corpus's in-process reference both load exactly this text, so
any difference between them is in how a request is handed to the engine.

``prune_paranoia`` is the one exception, on the edge only: given the rule
files' text, ``build_rules`` inlines them without the sections above the
app's paranoia level. CRS guards each such section with
``SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt N" "...skipAfter:END-..."`` (one
per phase it has rules in), and the executing level is the app's (only
``exclude_rules`` can be set, and no CRS rule raises it), so the engine
skipped those rules on every request anyway; it now neither walks past
them nor holds them. The corpus's matched ids and scores are the same with
and without pruning at paranoia 1-3 (``tests/unit/waf/test_pruning.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ferry.model.machine_waf import SCORE_RULE_ID, WafConfig

__all__ = ["SCORE_RULE_ID", "RuleFiles", "build_rules", "default_rule_files", "prune_paranoia"]


#: Directives of the recommended file that v3 refuses or that must not apply here.
_DROPPED = re.compile(
    r"^\s*(SecRequestBodyInMemoryLimit|SecAuditLog\w*|SecAuditEngine|SecTmpDir|SecDataDir"
    r"|SecUnicodeMapFile|SecRuleEngine|SecResponseBodyAccess|SecRequestBodyLimit|"
    r"SecRequestBodyNoFilesLimit|SecStatusEngine)\b"
)
_SKIPPED_RULE_FILES = frozenset({"REQUEST-910-IP-REPUTATION.conf"})


@dataclass(frozen=True)
class RuleFiles:
    """Where the engine settings and the Core Rule Set are on this machine."""

    recommended: Path  # modsecurity.conf-recommended
    unicode_mapping: Path
    crs_setup: Path  # crs-setup.conf
    crs_rules: Path  # the directory of REQUEST-*.conf / RESPONSE-*.conf and *.data


def default_rule_files() -> RuleFiles:
    """The paths ``scripts/install-deps.sh`` installs (Debian's packages)."""
    share = Path("/usr/local/share/ferry/modsecurity")
    return RuleFiles(
        recommended=share / "modsecurity.conf-recommended",
        unicode_mapping=share / "unicode.mapping",
        crs_setup=Path("/etc/modsecurity/crs/crs-setup.conf"),
        crs_rules=Path("/usr/share/modsecurity-crs/rules"),
    )


def build_rules(
    config: WafConfig,
    files: RuleFiles,
    recommended_text: str,
    rule_file_names: list[str],
    rule_texts: Mapping[str, str] | None = None,
) -> str:
    """The SecLanguage text for ``config``.

    ``recommended_text``: the contents of ``files.recommended``;
    ``rule_file_names``: the names in ``files.crs_rules`` (the caller lists the
    directory: this function reads nothing). Detection-only unless ``block``.
    The last rule is ``SCORE_RULE_ID``'s (see there): a reference that wants
    the same ids must load this same text and drop that id. ``rule_texts``
    (name -> contents of those files): inline them through ``prune_paranoia``
    instead of including them whole.
    """
    engine = "On" if config.mode == "block" else "DetectionOnly"
    kept = [
        _v3_operator(line) for line in _logical_lines(recommended_text) if not _DROPPED.match(line)
    ]
    parts = [
        "# engine settings: modsecurity.conf-recommended, as v3 accepts them",
        f"SecRuleEngine {engine}",
        *kept,
        "SecRequestBodyAccess On",
        f"SecRequestBodyLimit {max(config.body_limit, 1)}",
        f"SecRequestBodyNoFilesLimit {max(config.body_limit, 1)}",
        "SecRequestBodyLimitAction ProcessPartial",
        "SecResponseBodyAccess Off",
        "SecAuditEngine Off",
        f"SecUnicodeMapFile {files.unicode_mapping} 20127",
        "# the OWASP Core Rule Set, with this app's settings",
        f'SecAction "id:900000,phase:1,nolog,pass,t:none,'
        f'setvar:tx.paranoia_level={config.paranoia}"',
        f'SecAction "id:900110,phase:1,nolog,pass,t:none,'
        f'setvar:tx.inbound_anomaly_score_threshold={config.inbound_threshold}"',
        f'SecAction "id:900200,phase:1,nolog,pass,t:none,'
        f"setvar:'tx.allowed_methods={' '.join(config.allowed_methods)}'\"",
        f"Include {files.crs_setup}",
    ]
    for name in sorted(rule_file_names):
        if name.endswith(".conf") and name not in _SKIPPED_RULE_FILES:
            if rule_texts is None:
                parts.append(f"Include {files.crs_rules / name}")
            else:
                parts.append(f"# {name}, without the sections above paranoia {config.paranoia}")
                parts.append(prune_paranoia(rule_texts[name], config.paranoia, files.crs_rules))
    if config.exclude_rules:
        parts.append("SecRuleRemoveById " + " ".join(str(i) for i in config.exclude_rules))
    parts.append(
        f'SecAction "id:{SCORE_RULE_ID},phase:5,pass,log,t:none,'
        f"msg:'ferry: inbound anomaly score',logdata:'%{{tx.anomaly_score}}'\""
    )
    return "\n".join(parts) + "\n"


_GUARD = re.compile(
    r'^SecRule TX:EXECUTING_PARANOIA_LEVEL "@lt (\d)" "id:\d+,phase:(\d),pass,nolog,'
    r'skipAfter:([\w-]+)"$'
)
_PHASE = re.compile(r"\bphase:(\w+)")
_ACTIONS = re.compile(r'"((?:[^"\\]|\\.)*)"$')  # a directive's last quoted part
_FROM_FILE = re.compile(r'("!?@(?:pmFromFile|pmf|ipMatchFromFile|ipMatchF) +)([^"\n]+)')


def prune_paranoia(text: str, paranoia: int, directory: Path) -> str:
    """A CRS rule file's ``text`` without its sections above ``paranoia``. Pure.

    A section starts at the first ``@lt N`` guard with N > ``paranoia`` and
    ends before the ``SecMarker`` its guards skip to. It is kept whole unless
    every directive in it is one of those guards, a rule (or chain) in a
    phase a guard covers, or a comment: the engine would have skipped all of
    it. Operators that read files get ``directory`` in front of relative
    names (the text no longer comes from a file in that directory).
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        guard = _GUARD.match(lines[i])
        if guard and int(guard.group(1)) > paranoia:
            end = _section_end(lines, i, guard.group(3))
            if end is not None:
                out.append(f"# (paranoia {guard.group(1)} and up: not loaded)")
                i = end
                continue
        out.append(lines[i])
        i += 1
    return _FROM_FILE.sub(lambda m: m.group(1) + _absolute(m.group(2), directory), "\n".join(out))


def _section_end(lines: list[str], start: int, marker: str) -> int | None:
    """The index of ``SecMarker "marker"`` after ``start`` when the lines between may go."""
    phases: set[str] = set()
    chained = False
    directive = ""
    for j in range(start, len(lines)):
        line = lines[j]
        if line.strip() == f'SecMarker "{marker}"':
            return j
        if not directive and (not line.strip() or line.lstrip().startswith("#")):
            continue
        directive += line.strip().rstrip("\\") + " "
        if line.endswith("\\"):
            continue
        guard = _GUARD.match(directive.strip())
        if guard and guard.group(3) == marker:
            phases.add(guard.group(2))
        elif directive.startswith(("SecRule ", "SecAction ")):
            found = _PHASE.findall(directive)
            if not chained and (len(found) != 1 or found[0] not in phases):
                return None  # a rule no guard skips: keep the section
        else:
            return None  # a marker or another directive inside: keep the section
        actions = _ACTIONS.search(directive.strip())
        chained = actions is not None and "chain" in actions.group(1).replace(" ", "").split(",")
        directive = ""
    return None


def _absolute(names: str, directory: Path) -> str:
    return " ".join(n if n.startswith("/") else str(directory / n) for n in names.split())


def _v3_operator(line: str) -> str:
    """A directive of the v2 recommended file as ModSecurity v3's own file has it.

    v3 sets MULTIPART_UNMATCHED_BOUNDARY to 2 for a well-formed body ending in
    CRLF after the closing boundary (what browsers and curl send); v3's
    recommended file tests ``@eq 1``, the v2 one ``!@eq 0``, which would refuse
    every upload in block mode.
    """
    if line.startswith("SecRule MULTIPART_UNMATCHED_BOUNDARY"):
        return line.replace('"!@eq 0"', '"@eq 1"', 1)
    return line


def _logical_lines(text: str) -> list[str]:
    """Directives of a config file, continuation lines joined, comments and blanks dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending.strip():
        lines.append(pending)
    return lines
