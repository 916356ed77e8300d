"""An app's ``WafConfig`` -> the SecLanguage rule set the engine loads. Pure (reads no files).

The set is what a reference deployment of ModSecurity runs: the engine
settings of ``modsecurity.conf-recommended`` (minus the directives v3 refuses
and the Apache-only audit log), the CRS set-up with the app's paranoia level
and thresholds, every CRS rule file but IP reputation (this libmodsecurity
is built without GeoIP), then the app's exclusions. The edge and the
differential corpus's in-process reference both load exactly this text, so
any difference between them is in how a request is handed to the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ferry.model.machine_waf import SCORE_RULE_ID, WafConfig

__all__ = ["SCORE_RULE_ID", "RuleFiles", "build_rules", "default_rule_files"]


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
    config: WafConfig, files: RuleFiles, recommended_text: str, rule_file_names: list[str]
) -> str:
    """The SecLanguage text for ``config``.

    ``recommended_text``: the contents of ``files.recommended``;
    ``rule_file_names``: the names in ``files.crs_rules`` (the caller lists the
    directory: this function reads nothing). Detection-only unless ``block``.
    The last rule is ``SCORE_RULE_ID``'s (see there): a reference that wants
    the same ids must load this same text and drop that id.
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
            parts.append(f"Include {files.crs_rules / name}")
    if config.exclude_rules:
        parts.append("SecRuleRemoveById " + " ".join(str(i) for i in config.exclude_rules))
    parts.append(
        f'SecAction "id:{SCORE_RULE_ID},phase:5,pass,log,t:none,'
        f"msg:'ferry: inbound anomaly score',logdata:'%{{tx.anomaly_score}}'\""
    )
    return "\n".join(parts) + "\n"


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
