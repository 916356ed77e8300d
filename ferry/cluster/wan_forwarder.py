"""The WAN delay line process: read packets from a TUN device, write them back late.

``python -m ferry.cluster.wan_forwarder --tun wan0 --config FILE`` runs inside
the cluster's core namespace (``WanSpec.argv`` from ``ferry.cluster.wan``
already wraps it in ``nsenter``). Policy routing in core sends every packet
that arrives from a region into the TUN; this process reads each one, asks
``DelayLine`` when it is due, and writes it back to the TUN then; the kernel
routes it on by the main table. Packets it cannot classify pass at once.

It attaches to an existing persistent TUN (made by ``setup_wan``), so a crash
and restart loses only the packets in flight. SIGTERM/SIGINT stop it cleanly
(exit 0); a missing TUN or a bad config exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import sys
from pathlib import Path

from ferry.cluster.wan_schedule import DelayLine, WanConfig
from ferry.errors import FerryError, NetworkError

__all__ = ["DelayForwarder", "main", "open_tun"]

log = logging.getLogger("ferry.wan")

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65535
READ_BATCH = 256
# Release packets this close to their due time in the same wake-up: the loop's
# timers wake up to ~1 ms late, and an early packet by 0.3 ms is invisible.
EARLY_RELEASE_S = 0.0003


def open_tun(name: str) -> int:
    """Attach to TUN device ``name`` (IFF_TUN | IFF_NO_PI) in this namespace; return its fd.

    The fd is non-blocking. Creates a transient device if none exists, so the
    caller should have made a persistent one first. Raises ``NetworkError``.
    """
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open /dev/net/tun: {exc.strerror}") from exc
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise NetworkError(
            f"cannot attach to TUN device {name!r}: {exc.strerror}",
            hint="create it first (ferry.cluster.wan.setup_wan) in the same namespace",
        ) from exc
    return fd


class DelayForwarder:
    """Moves datagrams from ``fd`` back to ``fd`` through a ``DelayLine``, on one event loop.

    ``fd`` is any non-blocking datagram fd: a TUN device in production, one
    end of a socketpair in tests. ``run`` blocks (awaits) until ``stop``.
    """

    def __init__(self, fd: int, line: DelayLine) -> None:
        self.fd = fd
        self.line = line
        self.write_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self._stopped: asyncio.Event | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._loop.add_reader(self.fd, self._on_readable)
        try:
            await self._stopped.wait()
        finally:
            self._loop.remove_reader(self.fd)
            if self._timer is not None:
                self._timer.cancel()

    def stop(self) -> None:
        """Make ``run`` return; packets still in flight are dropped. Idempotent."""
        if self._stopped is not None:
            self._stopped.set()

    def _on_readable(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for _ in range(READ_BATCH):
            try:
                packet = os.read(self.fd, MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.error("read from the TUN failed: %s", exc)
                self.stop()
                return
            if not packet:
                break
            if self.line.admit(packet, now):
                self._write(packet)
        self._arm_timer()

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_due = None
        for packet in self.line.release(self._loop.time() + EARLY_RELEASE_S):
            self._write(packet)
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self._loop is not None
        due = self.line.next_due()
        if due is None or (self._timer_due is not None and self._timer_due <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._on_timer)

    def _write(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
        except OSError as exc:
            # A full queue or an unroutable packet: drop it, as a router would.
            self.write_errors += 1
            if self.write_errors in (1, 10, 100) or self.write_errors % 10000 == 0:
                log.warning("dropped a packet (%d so far): %s", self.write_errors, exc)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(tun: str, config_path: Path) -> None:
    """Attach to ``tun`` and forward until SIGTERM/SIGINT. Blocking; raises ``FerryError``."""
    try:
        text = config_path.read_text()
    except OSError as exc:
        raise NetworkError(f"cannot read the WAN config {config_path}: {exc.strerror}") from exc
    config = WanConfig.from_json(text, source=str(config_path))
    fd = open_tun(tun)
    forwarder = DelayForwarder(fd, DelayLine(config))
    loop = _new_event_loop()
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, forwarder.stop)
        log.info(
            "delaying traffic between %d regions on %s (%d pairs)",
            len(config.regions),
            tun,
            len(config.delays),
        )
        loop.run_until_complete(forwarder.run())
    finally:
        loop.close()
        with contextlib.suppress(OSError):
            os.close(fd)
    stats = forwarder.line.stats
    log.info(
        "stopped: %d delayed, %d passed, %d dropped (%d by a full queue)",
        stats.delayed,
        stats.passed,
        forwarder.write_errors + stats.overflowed,
        stats.overflowed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ferry.cluster.wan_forwarder",
        description="Delay packets between regions of an embedded Ferry cluster (run in core).",
    )
    parser.add_argument("--tun", required=True, help="name of the persistent TUN device")
    parser.add_argument("--config", required=True, type=Path, help="JSON written by setup_wan")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        serve(args.tun, args.config)
    except FerryError as exc:
        print(f"ferry wan forwarder: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
