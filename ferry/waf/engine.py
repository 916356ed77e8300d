"""The rule engine adapter: libmodsecurity behind one narrow seam.

``RuleEngine`` (the Protocol the edge uses) inspects one request in two
steps: ``request`` runs the connection, URI, request-header and request-body
phases (1 and 2) and answers the verdict the edge must act on before the
request reaches a machine; ``finish`` runs the response-header phase (3)
when there is a response and the logging phase (5), and answers every
matched rule id and the anomaly score. Both are coroutines: the engine
holds the GIL for the whole evaluation (measured: a thread spinning beside a
3.4 s evaluation made 0.1% of its progress), so the edge's engine
(``ferry.waf.workers``) runs it in worker processes. ``InlineEngine`` runs it
in the calling thread (tests, the differential reference); ``ModSecurityCore``
is the synchronous core both use.

What the engine sees is what ModSecurity sees when it sees the request whole
(the bytes as sent): the raw URI, the method, the HTTP version, every header
in order with duplicates (values without the spaces and tabs around them),
the body de-chunked (up to ``body_limit + 1`` bytes: the engine keeps
``body_limit`` of them and, like a server handing it a longer body, notes
that the limit was passed), the client's and the server's address and port.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from libmodsecurity import ModSecurity, RuleMessage, RulesSet, Transaction

from ferry.errors import FerryError
from ferry.model.machine_waf import WafConfig
from ferry.waf.rules import SCORE_RULE_ID, RuleFiles, build_rules, default_rule_files

__all__ = [
    "InlineEngine",
    "ModSecurityCore",
    "RuleEngine",
    "WafEngineError",
    "WafOutcome",
    "WafRequest",
    "WafRulesError",
    "config_key",
    "outcome_of",
]

Headers = tuple[tuple[bytes, bytes], ...]
#: Compiled rule sets kept per process (one per distinct ``[waf]`` in use).
MAX_RULE_SETS = 16


class WafEngineError(FerryError):
    """The engine could not inspect a request (a worker died, a transaction was lost)."""


class WafRulesError(WafEngineError):
    """A rule set failed to load; the message is the parser's."""


@dataclass(frozen=True, slots=True)
class WafRequest:
    """A request as the engine sees it. ``body``: de-chunked, at most ``body_limit + 1`` bytes."""

    request_id: str
    client: tuple[str, int]
    server: tuple[str, int]
    method: bytes
    uri: bytes
    http_version: str  # "1.1", "1.0", "2.0"
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class WafOutcome:
    """The end of a transaction: the status the engine asked for (0: none), every
    matched rule id in the order they matched, and the inbound anomaly score."""

    status: int
    rule_ids: tuple[int, ...]
    anomaly_score: int


def config_key(config: WafConfig) -> str:
    """The identity of a rule set: equal settings share one compiled set."""
    return config.model_dump_json()


def outcome_of(status: int, messages: list[RuleMessage]) -> WafOutcome:
    """Matched ids and score from a finished transaction's rule messages. Pure.

    Every rule that matched and logs leaves a message, the disruptive one
    (949110 in block mode) included; ``SCORE_RULE_ID``'s carries the score.
    """
    ids: list[int] = []
    score = 0
    for message in messages:
        if message.rule_id == SCORE_RULE_ID:
            score = int(message.data) if message.data.isdigit() else 0
        else:
            ids.append(message.rule_id)
    return WafOutcome(status, tuple(ids), score)


class ModSecurityCore:
    """Compiles rule sets (cached by ``config_key``) and runs transactions. Blocking;
    one thread at a time. ``prune``: the rule files inlined without the sections
    above the paranoia level (``rules.prune_paranoia``), else included whole."""

    def __init__(self, files: RuleFiles | None = None, *, prune: bool = True) -> None:
        self.files = files or default_rule_files()
        self.prune = prune  # load only the sections up to the paranoia level (rules.py)
        self.engine = ModSecurity()
        self.engine.set_connector_information("ferry-edge")
        # Without a callback the engine prints every match to stderr; the messages
        # are read from the transaction instead (the callback misses disruptive ones).
        self.engine.set_rule_message_callback(_ignore)
        self._sets: OrderedDict[str, RulesSet] = OrderedDict()

    def rules_text(self, config: WafConfig) -> str:
        """The SecLanguage text for ``config`` (reads the rule files)."""
        try:
            recommended = self.files.recommended.read_text()
            names = os.listdir(self.files.crs_rules)
            texts = None
            if self.prune:
                texts = {
                    name: (self.files.crs_rules / name).read_text()
                    for name in names
                    if name.endswith(".conf")
                }
        except (OSError, UnicodeDecodeError) as exc:
            raise WafRulesError(f"the rule files cannot be read: {exc}") from exc
        return build_rules(config, self.files, recommended, names, texts)

    def load(self, key: str) -> RulesSet:
        """The compiled set for ``key`` (a ``config_key``); compiles it on first use.

        Raises ``WafRulesError`` with the parser's message when it fails to load.
        """
        rules = self._sets.get(key)
        if rules is not None:
            self._sets.move_to_end(key)
            return rules
        config = WafConfig.model_validate_json(key)
        rules = RulesSet()
        if rules.load(self.rules_text(config)) < 0:
            raise WafRulesError(f"the rule set does not load: {rules.get_parser_error().strip()}")
        self._sets[key] = rules
        while len(self._sets) > MAX_RULE_SETS:
            self._sets.popitem(last=False)
        return rules

    def request(self, key: str, request: WafRequest) -> tuple[Transaction, int]:
        """Phases 1 and 2 for ``request``; the open transaction and the status asked for."""
        txn = Transaction(self.engine, self.load(key), request.request_id)
        txn.process_connection(request.client[0], request.client[1], *request.server)
        txn.process_uri(request.uri, request.method, request.http_version)  # type: ignore[arg-type]
        status = _status(txn)
        if not status:
            for name, value in request.headers:
                # The field value without the whitespace around it (RFC 9110 5.5), as a
                # web server hands it over; httptools keeps trailing spaces and tabs, and
                # rules compare values whole (943110: the Referer's host against Host).
                txn.add_request_header(name, value.strip(b" \t"))  # type: ignore[arg-type]
            txn.process_request_headers()
            status = _status(txn)
        if not status:
            if request.body:
                txn.append_request_body(request.body)
            txn.process_request_body()
            status = _status(txn)
        return txn, status

    def finish(
        self, txn: Transaction, status: int, response: tuple[int, str, Headers] | None
    ) -> WafOutcome:
        """Phase 3 for ``response`` (status, protocol, headers) when given, then logging."""
        if response is not None and not status:
            code, protocol, headers = response
            for name, value in headers:
                txn.add_response_header(name, value)  # type: ignore[arg-type]
            txn.process_response_headers(code, protocol)
            status = _status(txn)
        txn.process_logging()
        return outcome_of(status, txn.get_rule_messages())


def _ignore(_message: RuleMessage) -> None:
    return None


def _status(txn: Transaction) -> int:
    found = txn.intervention()
    return found.status if found is not None and found.disruptive else 0


class Inspection(Protocol):
    """An open transaction: what ``RuleEngine.request`` returns with its verdict."""

    status: int


class RuleEngine(Protocol):
    """The edge's seam to the rule engine. Every method may raise ``WafEngineError``."""

    async def load(self, config: WafConfig) -> None:
        """Compile ``config``'s rule set (everywhere it will run); ``WafRulesError`` if bad."""
        ...

    async def request(self, config: WafConfig, request: WafRequest) -> Inspection:
        """Phases 1-2; the transaction stays open until ``finish``."""
        ...

    async def finish(
        self, inspection: Inspection, response: tuple[int, str, Headers] | None
    ) -> WafOutcome:
        """Phase 3 (if ``response``), then logging; closes the transaction."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _InlineInspection:
    txn: Transaction
    status: int


class InlineEngine:
    """``RuleEngine`` on the calling thread (blocks the loop while it runs: tests and tools)."""

    def __init__(self, core: ModSecurityCore | None = None) -> None:
        self.core = core or ModSecurityCore()

    async def load(self, config: WafConfig) -> None:
        self.core.load(config_key(config))

    async def request(self, config: WafConfig, request: WafRequest) -> Inspection:
        txn, status = self.core.request(config_key(config), request)
        return _InlineInspection(txn, status)

    async def finish(
        self, inspection: Inspection, response: tuple[int, str, Headers] | None
    ) -> WafOutcome:
        assert isinstance(inspection, _InlineInspection)
        return self.core.finish(inspection.txn, inspection.status, response)

    async def close(self) -> None:
        return None
