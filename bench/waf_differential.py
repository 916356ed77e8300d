"""The differential run: the corpus through a real edge, its WAF events against the reference.

    # on the `make up` topology, an app deployed with [waf] mode="detect", paranoia=4:
    .venv/bin/python bench/waf_differential.py --app hello --region ams
    .venv/bin/python bench/waf_differential.py --app hello --region ams --https   # TLS, 443

Every routable, sendable corpus request is sent as exact bytes over its own
TCP connection (Host rewritten from the corpus placeholder to
``<app>.<cluster domain>``); the response's ``Fly-Request-Id`` ties it to
the edge's WAF event (``ferry waf events -a APP --json``). The same bytes go
through ``bench.waf_reference.WafReference`` with the client address the
edge recorded, and the two sets of rule ids are compared per request.
Prints the counts per family and, for each difference, the missing ids
(the reference matched, the edge did not) and the extra ids (the reverse).

With ``--region R`` the sending happens inside region R's network (through
``ferry region exec R``, as a client there would), while events are read
from here, where the control plane is reachable.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httptools

from bench.waf_corpus import CORPUS_HOST, Entry, load_corpus
from bench.waf_reference import WafReference, rewrite_host
from ferry.model.machine_waf import WafConfig

__all__ = [
    "Difference",
    "Report",
    "SendResult",
    "compare",
    "event_client",
    "format_report",
    "run_differential",
    "send_request",
]

_CLIENT_KEYS = ("client_ip", "client_addr", "client_address", "client", "remote_addr")


@dataclass(frozen=True)
class SendResult:
    """What one request got back: status, ``Fly-Request-Id``, and both socket ends.

    ``status`` is None when no complete response head arrived (``error`` says why).
    """

    name: str
    status: int | None
    request_id: str | None
    local: tuple[str, int]
    peer: tuple[str, int]
    error: str = ""


@dataclass(frozen=True)
class Difference:
    """A request whose ids differ: ``missing``: only the reference has them; ``extra``: the edge."""

    name: str
    family: str
    missing: frozenset[int]
    extra: frozenset[int]


@dataclass
class Report:
    """The whole comparison. ``unanswered``: requests with no response or no request id."""

    per_family: dict[str, list[int]] = field(default_factory=dict)  # family -> [sent, differing]
    differences: list[Difference] = field(default_factory=list)
    unanswered: list[SendResult] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(counts[0] for counts in self.per_family.values())


def compare(
    families: dict[str, str],
    edge: dict[str, frozenset[int]],
    reference: dict[str, frozenset[int]],
) -> list[Difference]:
    """Per request name (keys of ``reference``), the ids each side has that the other lacks.

    A request absent from ``edge`` had no event: the edge matched nothing.
    Pure; the result is in ``reference``'s order, only requests that differ.
    """
    differences = []
    for name, expected in reference.items():
        seen = edge.get(name, frozenset())
        if seen != expected:
            differences.append(
                Difference(name, families.get(name, "?"), expected - seen, seen - expected)
            )
    return differences


def event_client(event: dict[str, object], fallback: tuple[str, int]) -> tuple[str, int]:
    """The client address an event records ("ip", "ip:port", "[v6]:port"), else ``fallback``.

    A separate ``client_port`` key is honoured; without a port the sending
    socket's own port (what the edge saw, absent NAT) is used.
    """
    for key in _CLIENT_KEYS:
        value = event.get(key)
        if isinstance(value, str) and value:
            host, port = _split_host_port(value)
            raw_port = event.get("client_port")
            if isinstance(raw_port, int):
                port = raw_port
            return host, port if port is not None else fallback[1]
    return fallback


def _split_host_port(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port) if port.isdigit() else None
    return value, None


def send_request(
    name: str,
    raw: bytes,
    edge: tuple[str, int],
    timeout: float = 10.0,
    tls_name: str | None = None,
) -> SendResult:
    """Send ``raw`` on a new connection to ``edge``, read one response head; never raises.

    With ``tls_name`` the connection is TLS (SNI ``tls_name``, ALPN ``http/1.1`` only,
    the certificate checked against the default trust store: inside a region,
    ``ferry region exec`` points ``SSL_CERT_FILE`` at the cluster CA).
    """
    head_only = raw.split(b" ", 1)[0] == b"HEAD"
    local: tuple[str, int] = ("", 0)
    try:
        with socket.create_connection(edge, timeout=timeout) as plain:
            local = plain.getsockname()[:2]
            sock = plain
            if tls_name is not None:
                context = ssl.create_default_context()
                context.set_alpn_protocols(["http/1.1"])
                sock = context.wrap_socket(plain, server_hostname=tls_name)
            sock.sendall(raw)
            status, request_id = _read_response(sock, head_only)
    except (OSError, httptools.HttpParserError) as exc:
        return SendResult(name, None, None, local, edge, f"{type(exc).__name__}: {exc}")
    return SendResult(name, status, request_id, local, edge)


def _read_response(sock: socket.socket, head_only: bool) -> tuple[int | None, str | None]:
    """The final response's status and request id (interim 1xx responses are skipped)."""

    class Collect:
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.status: int | None = None
            self.request_id: str | None = None
            self.headers_done = False
            self.done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() == b"fly-request-id":
                self.request_id = value.decode("latin-1")

        def on_headers_complete(self) -> None:
            self.status = int(self.parser.get_status_code())
            self.headers_done = self.status >= 200

        def on_message_complete(self) -> None:
            self.done = self.headers_done  # a 100 Continue ends; the real answer follows

    collect = Collect()
    while not collect.done and not (head_only and collect.headers_done):
        data = sock.recv(65536)
        if not data:
            break
        collect.parser.feed_data(data)
    if not collect.headers_done:
        return None, None
    return collect.status, collect.request_id


def run_differential(
    entries: Sequence[Entry],
    *,
    app_host: str,
    send: Callable[[list[tuple[str, bytes]]], list[SendResult]],
    fetch_events: Callable[[], list[dict[str, object]]],
    reference: WafReference,
    wait_seconds: float = 60.0,
    poll_seconds: float = 0.5,
) -> Report:
    """Send ``entries`` (routable and sendable ones), wait for their events, compare.

    Blocks for the sending, then until every request the reference matches
    has an event in ``fetch_events()`` or ``wait_seconds`` pass.
    """
    chosen = [e for e in entries if e.routable and e.sendable]
    wire = {e.name: rewrite_host(e.raw, CORPUS_HOST.encode(), app_host.encode()) for e in chosen}
    results = {r.name: r for r in send(list(wire.items()))}
    answered = {n: r for n, r in results.items() if r.status is not None and r.request_id}
    first_guess = {
        n: reference.evaluate(wire[n], r.local, r.peer).rule_ids for n, r in answered.items()
    }
    awaited = {answered[n].request_id for n, ids in first_guess.items() if ids}
    deadline = time.monotonic() + wait_seconds
    while True:
        events = _events_by_request(fetch_events())
        if awaited <= events.keys() or time.monotonic() >= deadline:
            break
        time.sleep(poll_seconds)
    edge_ids: dict[str, frozenset[int]] = {}
    reference_ids: dict[str, frozenset[int]] = {}
    for name, result in answered.items():
        assert result.request_id is not None
        request_events = events.get(result.request_id, [])
        ids: set[int] = set()
        for event in request_events:
            ids.update(int(i) for i in event.get("rule_ids", []) or [])  # type: ignore[attr-defined]
        edge_ids[name] = frozenset(ids)
        client = event_client(request_events[0], result.local) if request_events else result.local
        reference_ids[name] = (
            first_guess[name]
            if client == result.local
            else reference.evaluate(wire[name], client, result.peer).rule_ids
        )
    families = {e.name: e.family for e in chosen}
    report = Report(
        differences=compare(families, edge_ids, reference_ids),
        unanswered=[r for n, r in results.items() if n not in answered],
    )
    differing = {d.name for d in report.differences}
    for name in answered:
        counts = report.per_family.setdefault(families[name], [0, 0])
        counts[0] += 1
        counts[1] += name in differing
    return report


def _events_by_request(events: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    by_request: dict[str, list[dict[str, object]]] = {}
    for event in events:
        request_id = event.get("request_id")
        if isinstance(request_id, str):
            by_request.setdefault(request_id, []).append(event)
    return by_request


def format_report(report: Report) -> str:
    """The report as the run prints it: totals, per family, then each difference."""
    lines = [
        f"requests compared: {report.sent}, differing: {len(report.differences)}, "
        f"unanswered: {len(report.unanswered)}",
        "",
        f"{'family':24} {'sent':>5} {'differ':>7}",
    ]
    for family, (sent, differ) in sorted(report.per_family.items()):
        lines.append(f"{family:24} {sent:5} {differ:7}")
    for d in report.differences:
        lines.append(
            f"DIFF {d.name} ({d.family}): missing {sorted(d.missing)} extra {sorted(d.extra)}"
        )
    for r in report.unanswered:
        lines.append(f"UNANSWERED {r.name}: status {r.status} request id {r.request_id} {r.error}")
    return "\n".join(lines)


def direct_sender(
    edge: tuple[str, int], timeout: float = 10.0, tls_name: str | None = None
) -> Callable[[list[tuple[str, bytes]]], list[SendResult]]:
    """Send from this process's network namespace, one request at a time, in order."""

    def send(requests: list[tuple[str, bytes]]) -> list[SendResult]:
        return [send_request(name, raw, edge, timeout, tls_name) for name, raw in requests]

    return send


def region_sender(
    ferry: list[str], region: str, edge: tuple[str, int], tls_name: str | None = None
) -> Callable[[list[tuple[str, bytes]]], list[SendResult]]:
    """Send from inside ``region``'s network: this script's ``send`` via ``ferry region exec``
    (over TLS with SNI ``tls_name`` when given)."""

    def send(requests: list[tuple[str, bytes]]) -> list[SendResult]:
        stdin = "".join(
            json.dumps({"name": n, "raw": base64.b64encode(r).decode()}) + "\n" for n, r in requests
        )
        argv = [
            *ferry,
            "region",
            "exec",
            region,
            "--",
            sys.executable,
            str(Path(__file__).resolve()),
            "send",
            "--edge",
            f"{edge[0]}:{edge[1]}",
            *(["--tls-name", tls_name] if tls_name else []),
        ]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"sending in {region} failed: {done.stderr.strip()[-2000:]}")
        return [_result_from_json(json.loads(line)) for line in done.stdout.splitlines() if line]

    return send


def cli_events(ferry: list[str], app: str) -> Callable[[], list[dict[str, object]]]:
    """``ferry waf events -a APP --json`` as a function (raises with its stderr on failure)."""

    def fetch() -> list[dict[str, object]]:
        done = subprocess.run(
            # the newest 10 000 (the API's maximum): the default 100 would drop most of a run
            [*ferry, "waf", "events", "-a", app, "--json", "-n", "10000"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ferry waf events failed: {done.stderr.strip()[-2000:]}")
        events = json.loads(done.stdout or "[]")
        if not isinstance(events, list):
            raise RuntimeError("ferry waf events --json did not print a JSON array")
        return [e for e in events if isinstance(e, dict)]

    return fetch


def _result_to_json(result: SendResult) -> dict[str, object]:
    return {
        "name": result.name,
        "status": result.status,
        "request_id": result.request_id,
        "local": list(result.local),
        "peer": list(result.peer),
        "error": result.error,
    }


def _result_from_json(obj: dict[str, object]) -> SendResult:
    local, peer = obj["local"], obj["peer"]
    assert isinstance(local, list) and isinstance(peer, list)
    status = obj["status"]
    request_id = obj["request_id"]
    return SendResult(
        str(obj["name"]),
        status if isinstance(status, int) else None,
        request_id if isinstance(request_id, str) else None,
        (str(local[0]), int(local[1])),
        (str(peer[0]), int(peer[1])),
        str(obj.get("error", "")),
    )


def _address(text: str) -> tuple[str, int]:
    host, port = _split_host_port(text)
    return host, port if port is not None else 80


def _cluster_status(ferry: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [*ferry, "cluster", "status", "--json"], capture_output=True, text=True, check=True
    )
    status = json.loads(done.stdout)
    assert isinstance(status, dict)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command")
    send = sub.add_parser("send", help="(internal) send JSON-lines requests from stdin")
    send.add_argument("--edge", required=True)
    send.add_argument("--tls-name", help="connect with TLS, this SNI")
    parser.add_argument("--app", default="hello", help="the app (deployed with [waf] detect)")
    parser.add_argument("--host", help="the app's host name (default: APP.<cluster domain>)")
    parser.add_argument("--edge", help="edge ADDR[:PORT] (default: the cluster's edge address)")
    parser.add_argument("--region", help="send from inside this region (ferry region exec)")
    parser.add_argument(
        "--https", action="store_true", help="send over TLS to port 443 (SNI: the app's host)"
    )
    parser.add_argument("--paranoia", type=int, default=4, help="the app's [waf] paranoia")
    parser.add_argument(
        "--fly-toml", type=Path, help="take the app's whole [waf] table from this fly.toml"
    )
    parser.add_argument("--family", action="append", help="only these families")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for events")
    parser.add_argument("--ferry", default=f"{sys.executable} -m ferry", help="the ferry command")
    args = parser.parse_args(argv)
    if args.command == "send":
        edge = _address(args.edge)
        for line in sys.stdin:
            obj = json.loads(line)
            raw = base64.b64decode(obj["raw"])
            result = send_request(obj["name"], raw, edge, tls_name=args.tls_name)
            print(json.dumps(_result_to_json(result)), flush=True)
        return 0
    ferry = args.ferry.split()
    status: dict[str, object] = {}
    if args.host is None or args.edge is None:
        status = _cluster_status(ferry)
    host = args.host or f"{args.app}.{status['domain']}"
    edge = _address(args.edge or str(status["edge_address"]))
    tls_name = host if args.https else None
    if args.https and (args.edge is None or ":" not in args.edge):
        edge = (edge[0], 443)
    entries = [e for e in load_corpus() if not args.family or e.family in args.family]
    if args.region:
        sender = region_sender(ferry, args.region, edge, tls_name)
    else:
        sender = direct_sender(edge, tls_name=tls_name)
    config = WafConfig(mode="detect", paranoia=args.paranoia)
    if args.fly_toml is not None:
        config = WafConfig.model_validate(tomllib.loads(args.fly_toml.read_text()).get("waf", {}))
    with WafReference(config) as reference:
        report = run_differential(
            entries,
            app_host=host,
            send=sender,
            fetch_events=cli_events(ferry, args.app),
            reference=reference,
            wait_seconds=args.wait,
        )
    scheme = "https" if args.https else "http"
    print(f"edge {scheme} {edge[0]}:{edge[1]}, host {host}, [waf] {config.model_dump()}")
    print(format_report(report))
    return 1 if report.differences or report.unanswered else 0


if __name__ == "__main__":
    raise SystemExit(main())
