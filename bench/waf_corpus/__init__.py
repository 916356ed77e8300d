"""The differential corpus: exact HTTP/1.1 request bytes, one JSON-lines file per family.

``load_corpus()`` reads every ``*.jsonl`` here (written by ``generate.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.waf_corpus._build import CORPUS_HOST, Entry

__all__ = ["CORPUS_DIR", "CORPUS_HOST", "Entry", "load_corpus"]

CORPUS_DIR = Path(__file__).resolve().parent


def load_corpus(directory: Path = CORPUS_DIR) -> list[Entry]:
    """Every entry of every ``*.jsonl`` file in ``directory``, files in name order.

    Raises ``ValueError`` naming the file and line of an entry that is not
    well formed.
    """
    entries: list[Entry] = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                obj = json.loads(line)
                entries.append(
                    Entry(
                        name=obj["name"],
                        family=obj["family"],
                        kind=obj["kind"],
                        raw=obj["raw"].encode("latin-1"),
                        expect=list(obj["expect"]),
                        routable=bool(obj["routable"]),
                        note=obj.get("note", ""),
                        sendable=bool(obj["sendable"]),
                    )
                )
            except (ValueError, KeyError, TypeError, UnicodeEncodeError) as exc:
                raise ValueError(f"{path.name}:{number}: not a corpus entry: {exc}") from exc
    return entries
