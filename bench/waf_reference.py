"""The in-process reference for the WAF: libmodsecurity fed a raw HTTP/1.1 request whole.

What the edge's WAF matches must equal what this matches on the same bytes,
with the same rules (``ferry.waf.rules.build_rules``) and the same client
address. It parses the request as a web server in front of ModSecurity does
(the request line, the raw request target exactly as sent, every header in
order with duplicates and original case, the body de-chunked) and drives one
``Transaction`` through connection, URI, headers, body and logging.

"Matched" (see bench/waf_corpus/README.md): the ids of the rule messages the
transaction saved, ``Transaction.get_rule_messages()`` after
``process_logging()``, i.e. what the audit log's part H lists. That is every
rule that matched and logs: ``nolog`` rules (the 901/949/980 bookkeeping)
and, in libmodsecurity v3, ``noauditlog`` rules (980120/980130 …) are never
in it. In ``detect`` mode it is exactly what the rule-message callback
receives; in ``block`` mode the callback misses the disruptive rule (949110),
which only ``get_rule_messages()`` has.

Only ``ferry.waf.rules`` and ``ferry.model.machine_waf`` are used from Ferry:
no edge code, so an edge bug cannot hide here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from libmodsecurity import ModSecurity, RulesSet, Transaction

from ferry.model.machine_waf import WafConfig
from ferry.waf.rules import SCORE_RULE_ID, RuleFiles, build_rules, default_rule_files

__all__ = [
    "SCORE_PROBE_ID",
    "ParsedRequest",
    "RequestParseError",
    "Verdict",
    "WafReference",
    "parse_request",
    "rewrite_host",
]

#: ``build_rules``' last rule (phase 5, pass) logs TX:ANOMALY_SCORE as its data;
#: its id is removed from every verdict, as the edge removes it.
SCORE_PROBE_ID = SCORE_RULE_ID
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")


class RequestParseError(ValueError):
    """The bytes are not one complete HTTP/1.x request."""


@dataclass(frozen=True)
class ParsedRequest:
    """A request as a web server hands it to ModSecurity.

    ``uri`` is the request target exactly as sent (no normalisation, no
    decoding); ``headers`` keep order, duplicates and case; ``body`` is
    de-chunked (trailers dropped). ``version`` is "1.1" or "1.0".
    """

    method: bytes
    uri: bytes
    version: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True)
class Verdict:
    """The reference's answer for one request: matched rule ids and TX:ANOMALY_SCORE."""

    rule_ids: frozenset[int]
    anomaly_score: int


def parse_request(raw: bytes) -> ParsedRequest:
    """Parse one complete HTTP/1.x request; raise ``RequestParseError`` naming what is wrong.

    Lenient where a web server is (header values are trimmed of spaces and
    tabs; bare LF line ends are accepted), strict where the body's length is
    concerned (chunked wins over Content-Length, as RFC 9112 says).
    """
    head_end = raw.find(b"\r\n\r\n")
    sep_len = 4
    if head_end < 0:
        head_end, sep_len = raw.find(b"\n\n"), 2
    if head_end < 0:
        raise RequestParseError("no end of headers (a blank line)")
    lines = re.split(rb"\r?\n", raw[:head_end])
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise RequestParseError(f"bad request line {lines[0][:80]!r}")
    method, uri, proto = parts
    version = _VERSION.match(proto)
    if version is None:
        raise RequestParseError(f"bad protocol {proto[:20]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise RequestParseError(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    rest = raw[head_end + sep_len :]
    return ParsedRequest(
        method=method,
        uri=uri,
        version=f"{version.group(1).decode()}.{version.group(2).decode()}",
        headers=tuple(headers),
        body=_body(headers, rest),
    )


def _body(headers: Sequence[tuple[bytes, bytes]], rest: bytes) -> bytes:
    codings = [v.lower() for n, v in headers if n.lower() == b"transfer-encoding"]
    if codings and codings[-1].split(b",")[-1].strip() == b"chunked":
        return _dechunk(rest)
    lengths = {v for n, v in headers if n.lower() == b"content-length"}
    if not lengths:
        return b""
    if len(lengths) > 1 or not lengths.copy().pop().isdigit():
        raise RequestParseError(f"bad Content-Length {sorted(lengths)!r}")
    length = int(lengths.pop())
    if len(rest) < length:
        raise RequestParseError(f"body is {len(rest)} bytes, Content-Length says {length}")
    return rest[:length]


def _dechunk(data: bytes) -> bytes:
    body = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise RequestParseError("truncated chunk size line")
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise RequestParseError(f"bad chunk size {size_text[:20]!r}") from None
        pos = eol + 2
        if size == 0:
            return bytes(body)
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise RequestParseError("chunk data not followed by CRLF")
        body += data[pos : pos + size]
        pos += size + 2


def rewrite_host(raw: bytes, placeholder: bytes, host: bytes) -> bytes:
    """``raw`` with the host name ``placeholder`` set to ``host`` wherever the head names it.

    The ``Host`` header, and the same name in the request line (absolute form)
    and in other headers (``Referer``, ``Origin``): a same-site Referer stays
    same-site, which CRS 943110 checks against Host. Only the head changes (so
    Content-Length stays right; the body is the payload and is left alone); a
    name that only contains ``placeholder`` (``x-app.waf.test``,
    ``app.waf.test.evil``) is not it.
    """
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return raw
    name = rb"(?<![A-Za-z0-9.-])" + re.escape(placeholder) + rb"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
    return re.sub(name, lambda _: host, raw[:head_end]) + raw[head_end:]


def _ignore(_message: object) -> None:
    pass


class WafReference:
    """libmodsecurity with ``build_rules(config, ...)`` loaded once; not thread-safe.

    ``evaluate`` blocks for as long as the rules take (milliseconds at PL4).
    """

    def __init__(
        self,
        config: WafConfig | None = None,
        files: RuleFiles | None = None,
    ) -> None:
        self.config = config or WafConfig(mode="detect", paranoia=4)
        files = files or default_rule_files()
        text = build_rules(
            self.config,
            files,
            files.recommended.read_text(),
            sorted(os.listdir(files.crs_rules)),
        )
        self._engine = ModSecurity()
        self._engine.set_connector_information("ferry-waf-reference")
        # without a callback the engine prints every match to stderr; the
        # messages themselves are read from the transaction
        self._engine.set_rule_message_callback(_ignore)
        self._rules = RulesSet()
        if self._rules.load(text) < 0:
            raise RuntimeError(f"the rules do not load: {self._rules.get_parser_error()}")

    def close(self) -> None:
        """Unregister the engine's callback (the binding keeps it alive until then)."""
        self._engine.set_rule_message_callback(None)

    def __enter__(self) -> WafReference:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def evaluate(
        self,
        raw: bytes,
        client: tuple[str, int] = ("192.0.2.10", 40000),
        server: tuple[str, int] = ("192.0.2.1", 80),
    ) -> Verdict:
        """Run ``raw`` (one HTTP/1.x request) through every request phase and logging.

        Raises ``RequestParseError`` if ``raw`` is not one complete request.
        """
        return self.evaluate_request(parse_request(raw), client, server)

    def evaluate_request(
        self,
        request: ParsedRequest,
        client: tuple[str, int] = ("192.0.2.10", 40000),
        server: tuple[str, int] = ("192.0.2.1", 80),
    ) -> Verdict:
        """``evaluate`` on an already parsed request (e.g. one altered to model a connector)."""
        transaction = Transaction(self._engine, self._rules)
        transaction.process_connection(client[0], client[1], server[0], server[1])
        # bytes, not str: the binding hands them to the engine unchanged (a str
        # would be UTF-8 encoded, turning each byte >= 0x80 into two)
        transaction.process_uri(request.uri, request.method, request.version)  # type: ignore[arg-type]
        for name, value in request.headers:
            transaction.add_request_header(name, value)  # type: ignore[arg-type]
        transaction.process_request_headers()
        if request.body:
            transaction.append_request_body(request.body)
        # always: phase 2 (ARGS, the body, and 949110's evaluation) runs only here
        transaction.process_request_body()
        transaction.process_logging()
        ids: set[int] = set()
        score = 0
        for message in transaction.get_rule_messages():
            if message.rule_id == SCORE_PROBE_ID:
                score = int(message.data or 0) if message.data.isdigit() else 0
            else:
                ids.add(message.rule_id)
        return Verdict(frozenset(ids), score)
