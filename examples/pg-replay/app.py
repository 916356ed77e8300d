"""pg-replay: reads from the nearest Postgres replica, writes replayed to the primary region.

A small notes service showing Fly's pattern for a database with one primary and
read replicas near the users (see README.md beside this file):

- every read goes to the nearest member's own Postgres,
  ``top1.nearest.of.<db>.internal:5433`` (a replica is read-only);
- a write (POST/PUT/PATCH/DELETE) that arrives outside ``PRIMARY_REGION`` is not
  run here: the answer is ``Fly-Replay: region=<PRIMARY_REGION>`` and the edge
  replays the request to a machine in the primary region;
- in the primary region writes go to ``DATABASE_URL`` (port 5432: always the
  current primary);
- outside the primary region everything uses the nearest replica, so a write the
  method check cannot see (``GET /hits`` counts a page view) fails with
  Postgres' read-only error (SQLSTATE 25006) and is replayed too.

Every JSON answer says who served it: ``served_by`` (this machine's region and
id, and ``replayed_from`` when the edge replayed the request here) and
``database`` (the member's machine id, region and role).

Runs on Debian's ``python3``, ``python3-psycopg2`` and ``python3-dnspython`` (all
in Ferry's Postgres image); standard library otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dns.resolver
import psycopg2
import psycopg2.errors
import psycopg2.extensions

PORT = int(os.environ.get("PORT", "8080"))
REGION = os.environ.get("FLY_REGION", "local")
MACHINE = os.environ.get("FLY_MACHINE_ID", socket.gethostname())
PRIMARY_REGION = os.environ.get("PRIMARY_REGION", REGION)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_NOTE = 1000  # characters
CATCH_UP_SECONDS = 3.0  # how long a read with ?after=LSN waits for the replica
#: Which member answered: its address, role, and the settings Ferry's image gives it.
WHO_ANSWERED = (
    "select host(inet_server_addr()), pg_is_in_recovery(),"
    " current_setting('ferry.machine_id', true), current_setting('ferry.region', true)"
)
SCHEMA = """
create table if not exists notes (
    id bigserial primary key,
    body text not null,
    region text not null,
    created_at timestamptz not null default now()
);
create table if not exists hits (region text primary key, count bigint not null)
"""


class NotAttached(Exception):
    """DATABASE_URL is not set: the app has not been attached to a database yet."""


class Database:
    """Connections to the primary (``DATABASE_URL``) and the nearest member (5433).

    Idle connections are kept per target and reused; one that failed is closed.
    Thread-safe.
    """

    def __init__(self, environ: dict[str, str]) -> None:
        self.url = environ.get("DATABASE_URL", "")
        self.read_url = environ.get("DATABASE_READ_URL", "")
        self._idle: dict[str, list[psycopg2.extensions.connection]] = {}
        self._lock = threading.Lock()
        self._schema_ready = False
        self._members: tuple[float, dict[str, tuple[str, str]]] = (0.0, {})

    def db_app(self) -> str:
        """The database app's name: ``pgdb`` in ``pgdb.flycast`` or ``*.pgdb.internal``."""
        host = str(psycopg2.extensions.parse_dsn(self.url).get("host", ""))
        labels = host.split(".")
        if len(labels) >= 2 and labels[-1] == "flycast":
            return labels[-2]
        if len(labels) >= 2 and labels[-1] == "internal":
            return labels[-2]
        raise NotAttached(f"DATABASE_URL's host {host!r} names no Ferry database app")

    def dsn(self, target: str) -> str:
        """``primary``: DATABASE_URL; ``nearest``: DATABASE_READ_URL, else DATABASE_URL
        pointed at ``top1.nearest.of.<db>.internal:5433`` (as Fly's docs derive it)."""
        if not self.url:
            raise NotAttached("DATABASE_URL is not set")
        if target == "primary":
            return self.url
        if self.read_url:
            return self.read_url
        nearest = f"top1.nearest.of.{self.db_app()}.internal"
        return str(psycopg2.extensions.make_dsn(self.url, host=nearest, port=5433))

    def run(
        self, target: str, sql: str, args: tuple[Any, ...] = ()
    ) -> tuple[list[Any], dict[str, Any]]:
        """Run one statement on ``target`` (autocommit); return its rows and the member
        that ran it. Raises psycopg2's errors (the connection is then dropped). A pooled
        connection to the nearest member that turns out dead (the member restarted) is
        replaced once; a write to the primary is never sent twice."""
        dsn = self.dsn(target)
        conn, pooled = self._take(dsn)
        try:
            return self._execute(dsn, conn, target, sql, args)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if not pooled or target == "primary":
                raise
        return self._execute(dsn, self._connect(dsn), target, sql, args)

    def _execute(
        self,
        dsn: str,
        conn: psycopg2.extensions.connection,
        target: str,
        sql: str,
        args: tuple[Any, ...],
    ) -> tuple[list[Any], dict[str, Any]]:
        try:
            with conn.cursor() as cur:
                if target == "primary" and not self._schema_ready:
                    cur.execute(SCHEMA)
                    self._schema_ready = True
                cur.execute(sql, args)
                rows = cur.fetchall() if cur.description else []
                cur.execute(WHO_ANSWERED)
                address, in_recovery, machine, region = cur.fetchone()
        except Exception:
            conn.close()
            raise
        self._give_back(dsn, conn)
        return rows, self.member(address, in_recovery, machine, region)

    def member(
        self, address: str | None, in_recovery: bool, machine: str | None, region: str | None
    ) -> dict[str, Any]:
        """Who answered: the member's own ``ferry.machine_id``/``ferry.region`` settings
        (Ferry's Postgres image sets them), else its address looked up in
        ``_instances.internal`` (a 6PN address: the connection came by ``.internal``)."""
        if not (machine and region):
            known = self._instances()
            key = str(ipaddress.ip_address(address)) if address else ""
            machine, region = known.get(key, ("?", "?"))
        role = "replica" if in_recovery else "primary"
        return {"machine": machine, "region": region, "role": role, "address": address}

    def _instances(self) -> dict[str, tuple[str, str]]:
        fetched, known = self._members
        if time.monotonic() - fetched < 10 and known:
            return known
        found: dict[str, tuple[str, str]] = {}
        try:
            answer = dns.resolver.resolve("_instances.internal", "TXT", lifetime=2)
        except Exception as exc:  # an unknown member is shown as "?", the read still answers
            print(f"_instances.internal: {exc}", file=sys.stderr)
            return known
        text = ";".join(b"".join(r.strings).decode() for r in answer)
        for entry in text.split(";"):
            fields = dict(f.split("=", 1) for f in entry.split(",") if "=" in f)
            if "ip" in fields:
                ip = str(ipaddress.ip_address(fields["ip"]))
                found[ip] = (fields.get("instance", "?"), fields.get("region", "?"))
        self._members = (time.monotonic(), found)
        return found

    def _take(self, dsn: str) -> tuple[psycopg2.extensions.connection, bool]:
        """An idle connection to ``dsn`` (True: from the pool) or a new one."""
        with self._lock:
            idle = self._idle.get(dsn)
            if idle:
                return idle.pop(), True
        return self._connect(dsn), False

    def _connect(self, dsn: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(dsn, connect_timeout=5, application_name=f"pg-replay {REGION}")
        conn.autocommit = True
        return conn

    def _give_back(self, dsn: str, conn: psycopg2.extensions.connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(dsn, [])
            if len(idle) < 4:
                idle.append(conn)
                return
        conn.close()


class Replay(Exception):
    """Answer with ``Fly-Replay: region=<PRIMARY_REGION>``: the write belongs there."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the edge pools its connections
    # Headers and body leave in two writes: without TCP_NODELAY the body waits for the
    # edge's delayed ACK of the headers (40 ms per answer).
    disable_nagle_algorithm = True
    server_version = "pg-replay"
    db: Database
    origin: str

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._body()
        replayed_from = _replay_source(self.headers.get("Fly-Replay-Src", ""))
        self.origin = replayed_from or REGION  # where the client's request landed
        try:
            if self.command in WRITE_METHODS and REGION != PRIMARY_REGION:
                raise Replay(f"{self.command} is a write; the primary is in {PRIMARY_REGION}")
            status, answer = self._route(body)
        except Replay as replay:
            if replayed_from or REGION == PRIMARY_REGION:
                # Replaying from the primary region (or again) would only loop: the
                # primary is changing (a failover) or PRIMARY_REGION is wrong.
                status, answer = 503, {"error": f"cannot write here: {replay.why}; retry"}
            else:
                self._answer(
                    409,
                    {"replaying_to": PRIMARY_REGION, "why": replay.why},
                    {"Fly-Replay": f"region={PRIMARY_REGION}"},
                )
                return
        except NotAttached as exc:
            status, answer = 503, {"error": f"{exc}: run `ferry postgres attach DB -a APP`"}
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            status, answer = 503, {"error": f"database unreachable: {first}"}
        except psycopg2.Error as exc:  # a bug or a schema problem: say which, keep serving
            status, answer = 500, {"error": f"database error {exc.pgcode}: {exc.pgerror}"}
        answer["served_by"] = {"region": REGION, "machine": MACHINE, "replayed_from": replayed_from}
        self._answer(status, answer, {"Retry-After": "1"} if status == 503 else {})

    def _body(self) -> bytes:
        """The request body, by Content-Length or chunked (as an edge may forward it)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self, body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(self.path)
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
        if path == "/healthz":
            return 200, {"ok": True}
        if path == "/":
            return 200, {
                "app": "pg-replay",
                "primary_region": PRIMARY_REGION,
                "reads_from": _redacted(self.db),
                "try": ["/notes", "/hits"],
            }
        if path == "/notes" and self.command in ("GET", "HEAD"):
            return self._read_notes(query.get("after", [""])[0])
        if path == "/notes" and self.command == "POST":
            return self._add_note(body)
        if path.startswith("/notes/") and self.command == "DELETE":
            return self._delete_note(path.removeprefix("/notes/"))
        if path == "/hits" and self.command in ("GET", "HEAD"):
            return self._hit()
        return 404, {"error": f"no route {self.command} {path}", "try": ["/notes", "/hits"]}

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[list[Any], dict[str, Any]]:
        """A write: on the primary in the primary region, else on the nearest member (a
        replica refuses it, and the request is replayed)."""
        target = "primary" if REGION == PRIMARY_REGION else "nearest"
        try:
            return self.db.run(target, sql, args)
        except psycopg2.errors.ReadOnlySqlTransaction as exc:
            raise Replay(f"the database here is read-only ({exc.pgcode})") from exc
        except psycopg2.errors.UndefinedTable as exc:
            if target == "primary":
                raise
            # A replica before the first write: the primary makes the tables.
            raise Replay("the tables are not made yet (no write so far)") from exc

    def _read_notes(self, after: str) -> tuple[int, dict[str, Any]]:
        caught_up = True
        if after:
            caught_up = self._wait_for(after)
        try:
            rows, member = self.db.run(
                "nearest",
                "select id, body, region, created_at::text from notes order by id desc limit 20",
            )
        except psycopg2.errors.UndefinedTable:  # nothing written yet
            rows, member = self.db.run("nearest", "select null")
            rows = []
        notes = [{"id": i, "body": b, "sent_from": r, "at": t} for i, b, r, t in rows]
        return 200, {"notes": notes, "caught_up": caught_up, "database": member}

    def _wait_for(self, lsn: str) -> bool:
        """Until the nearest member has replayed ``lsn`` (read your own writes), at
        most CATCH_UP_SECONDS; True when it has."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            try:
                rows, _ = self.db.run(
                    "nearest",
                    "select not pg_is_in_recovery() or pg_last_wal_replay_lsn() >= %s::pg_lsn",
                    (lsn,),
                )
            except psycopg2.errors.InvalidTextRepresentation:
                return False  # not an LSN: read what is there
            replayed = bool(rows[0][0])
            if replayed or time.monotonic() > deadline:
                return replayed
            time.sleep(0.05)  # the replica applies WAL as it streams in

    def _add_note(self, body: bytes) -> tuple[int, dict[str, Any]]:
        text = body.decode("utf-8", errors="replace").strip()
        if not text or len(text) > MAX_NOTE:
            return 400, {"error": f"send the note as the request body, 1 to {MAX_NOTE} characters"}
        rows, member = self._write(
            "insert into notes (body, region) values (%s, %s)"
            " returning id, pg_current_wal_lsn()::text",
            (text, self.origin),
        )
        ((note_id, lsn),) = rows
        return 201, {
            "id": note_id,
            "lsn": lsn,
            "read_it": f"/notes?after={lsn}",
            "database": member,
        }

    def _delete_note(self, raw_id: str) -> tuple[int, dict[str, Any]]:
        if not raw_id.isdigit():
            return 400, {"error": f"note id {raw_id!r} is not a number"}
        rows, member = self._write(
            "delete from notes where id = %s returning pg_current_wal_lsn()::text", (int(raw_id),)
        )
        if not rows:
            return 404, {"error": f"no note {raw_id}", "database": member}
        return 200, {"deleted": int(raw_id), "lsn": rows[0][0], "database": member}

    def _hit(self) -> tuple[int, dict[str, Any]]:
        """Counts a page view: a write inside a GET, which only the database can catch."""
        rows, member = self._write(
            "insert into hits values (%s, 1) on conflict (region)"
            " do update set count = hits.count + 1 returning count",
            (self.origin,),
        )
        return 200, {"hits": rows[0][0], "database": member}

    def _answer(self, status: int, answer: dict[str, Any], headers: dict[str, str]) -> None:
        data = (json.dumps(answer, indent=1) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _replay_source(header: str) -> str | None:
    """The region the edge replayed the request from (``fly-replay-src: …;region=sin;…``)."""
    fields = dict(p.split("=", 1) for p in header.split(";") if "=" in p)
    return fields.get("region") or None


def _redacted(db: Database) -> str:
    """Where reads go, without the password."""
    try:
        params = psycopg2.extensions.parse_dsn(db.dsn("nearest"))
    except NotAttached as exc:
        return str(exc)
    return f"{params.get('host')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


class DualStackServer(ThreadingHTTPServer):
    """Listens on IPv6 and IPv4 (the edge may use either)."""

    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    Handler.db = Database(dict(os.environ))
    server = DualStackServer(("::", PORT), Handler)
    print(f"pg-replay on :{PORT} in {REGION} (primary region {PRIMARY_REGION})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
