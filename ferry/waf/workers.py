"""``WorkerEngine``: the edge's ``RuleEngine``, evaluating in worker processes.

libmodsecurity holds the GIL while it evaluates (about 0.5 ms for a benign
request at paranoia 1, tens of ms for a large body at paranoia 4), so on the
event loop, or in a thread of the edge's process, it would stall every other
connection. Each worker (``ferry.waf.worker``) is a process with its own
compiled rule sets, fed over a Unix socket pair. A rule set has a home
worker (by its key): its requests' phases 1-2 go there while that worker is
not evaluating another request, else to the worker with the fewest requests
under evaluation; a request's response/logging goes to the worker that
holds its transaction. Keeping one rule set on one worker keeps that
worker's caches warm for it: measured on the 2-core VM, a benign request's
evaluation took 0.80 ms p50 in a worker that saw every request against
1.40 ms when consecutive requests alternated between two workers (each
worker's caches then hold the other half of the traffic's leftovers). Frames
are pipelined: several calls may be outstanding per worker, answered in
order.

A worker that dies fails its outstanding calls with ``WafEngineError`` and is
started again on next use; rule sets are recompiled there on demand.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import marshal
import os
import socket
import struct
import subprocess
import sys
import zlib
from collections import deque
from dataclasses import dataclass

from ferry.model.machine_waf import WafConfig
from ferry.waf.engine import (
    Headers,
    Inspection,
    WafEngineError,
    WafOutcome,
    WafRequest,
    WafRulesError,
    config_key,
)
from ferry.waf.rules import RuleFiles

__all__ = ["WorkerEngine", "default_workers"]

log = logging.getLogger(__name__)
_LENGTH = struct.Struct(">I")


def default_workers() -> int:
    """Workers an edge starts: ``FERRY_WAF_WORKERS``, else one per core up to 4."""
    configured = os.environ.get("FERRY_WAF_WORKERS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, os.cpu_count() or 1))


class _WorkerLink(asyncio.Protocol):
    """The edge's end of one worker's socket: frames out, replies matched in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[object]] = deque()
        self.buffer = bytearray()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4:
            size = _LENGTH.unpack_from(buffer)[0]
            if len(buffer) < 4 + size:
                break
            reply = marshal.loads(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(WafEngineError("a WAF worker stopped"))

    def call(self, message: tuple[object, ...]) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.lost:
            future.set_exception(WafEngineError("a WAF worker stopped"))
            return future
        data = marshal.dumps(message)  # type: ignore[arg-type]  # bytes, str, int only
        self.transport.write(_LENGTH.pack(len(data)) + data)
        self.waiting.append(future)
        return future


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    link: _WorkerLink
    loaded: set[str]
    inspecting: int = 0  # phases 1-2 calls sent and not yet answered


@dataclass(slots=True)
class _WorkerInspection:
    status: int
    worker: _Worker
    txn: int


class WorkerEngine:
    """A ``RuleEngine`` over ``workers`` processes, started on first use. Event-loop only."""

    def __init__(self, workers: int | None = None, files: RuleFiles | None = None) -> None:
        self.size = workers or default_workers()
        self.files = files
        self._workers: list[_Worker | None] = [None] * self.size
        self._txns = itertools.count(1)
        self._seq = itertools.count(1)
        self._starting: asyncio.Lock | None = None

    async def _worker(self, index: int) -> _Worker:
        worker = self._workers[index]
        if worker is not None and not worker.link.lost:
            return worker
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:  # one start per worker, however many callers wait
            return await self._start(index)

    async def _start(self, index: int) -> _Worker:
        worker = self._workers[index]
        if worker is not None and not worker.link.lost:
            return worker
        if worker is not None:
            worker.process.kill()
            await asyncio.to_thread(worker.process.wait)
        ours, theirs = socket.socketpair()
        args = [sys.executable, "-m", "ferry.waf.worker", str(theirs.fileno())]
        if self.files is not None:
            f = self.files
            paths = [f.recommended, f.unicode_mapping, f.crs_setup, f.crs_rules]
            args.append(json.dumps([str(p) for p in paths]))
        process = subprocess.Popen(args, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        _, link = await asyncio.get_running_loop().create_unix_connection(_WorkerLink, sock=ours)
        worker = _Worker(process, link, set())
        self._workers[index] = worker
        return worker

    async def _pick(self, key: str) -> _Worker:
        """``key``'s home worker when it is not evaluating a request, else the one with
        the fewest requests under evaluation (then calls outstanding); a worker that
        is not up is started and used."""
        home = zlib.crc32(key.encode()) % self.size
        worker = self._workers[home]
        if worker is None or worker.link.lost:
            return await self._worker(home)
        if not worker.inspecting:
            return worker
        best = worker
        for index, other in enumerate(self._workers):
            if other is None or other.link.lost:
                return await self._worker(index)
            if (other.inspecting, len(other.link.waiting)) < (
                best.inspecting,
                len(best.link.waiting),
            ):
                best = other
        return best

    async def _call(self, worker: _Worker, message: tuple[object, ...]) -> object:
        reply = await worker.link.call(message)
        assert isinstance(reply, tuple)
        _, ok, payload = reply
        if not ok:
            raise WafEngineError(f"the WAF engine failed: {payload}")
        return payload

    async def _ensure(self, worker: _Worker, key: str) -> None:
        if key in worker.loaded:
            return
        reply = await worker.link.call(("L", next(self._seq), key))
        assert isinstance(reply, tuple)
        if not reply[1]:
            raise WafRulesError(str(reply[2]))
        worker.loaded.add(key)

    async def load(self, config: WafConfig) -> None:
        """Compile ``config`` in every worker (in parallel); ``WafRulesError`` if it fails."""
        key = config_key(config)
        workers = [await self._worker(i) for i in range(self.size)]
        await asyncio.gather(*(self._ensure(w, key) for w in workers))

    async def request(self, config: WafConfig, request: WafRequest) -> Inspection:
        key = config_key(config)
        worker = await self._pick(key)
        await self._ensure(worker, key)
        txn = next(self._txns)
        worker.inspecting += 1
        try:
            status = await self._call(
                worker,
                (
                    "Q", next(self._seq), key, txn, request.request_id,
                    request.client[0], request.client[1], request.server[0], request.server[1],
                    request.method, request.uri, request.http_version, request.headers,
                    request.body,
                ),
            )  # fmt: skip
        finally:
            worker.inspecting -= 1
        assert isinstance(status, int)
        return _WorkerInspection(status, worker, txn)

    async def finish(
        self, inspection: Inspection, response: tuple[int, str, Headers] | None
    ) -> WafOutcome:
        assert isinstance(inspection, _WorkerInspection)
        payload = await self._call(
            inspection.worker, ("F", next(self._seq), inspection.txn, response)
        )
        assert isinstance(payload, tuple)
        status, ids, score = payload
        return WafOutcome(int(status), tuple(ids), int(score))

    async def close(self) -> None:
        """Stop every worker (closing its socket ends it); idempotent."""
        for index, worker in enumerate(self._workers):
            if worker is None:
                continue
            self._workers[index] = None
            if worker.link.transport is not None:
                worker.link.transport.close()
            try:
                await asyncio.wait_for(asyncio.to_thread(worker.process.wait), 5)
            except TimeoutError:
                worker.process.kill()
                await asyncio.to_thread(worker.process.wait)
