"""``run_server``: serve the control plane with uvicorn (uvloop + httptools) on several addresses.

The sockets are bound here, before uvicorn starts, so one server answers on
loopback and on the address the cluster's hosts reach (``10.x.0.1:4280``)
at once, and a bad address fails with a clear sentence instead of a trace.
uvicorn turns SIGTERM and SIGINT into a graceful shutdown: open requests
finish (long-polls are cut at the shutdown timeout), then the store closes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from ferry.autoscale.distances import RegionDistances, load_latency_file
from ferry.errors import UnavailableError, ValidationError
from ferry.secrets.keys import hold_server_lock, open_secrets_key
from ferry.server.app import create_app
from ferry.server.auth import RateLimits, ensure_admin_token
from ferry.server.certs_service import sealed_key_ids
from ferry.server.certs_settings import cert_settings_from_env
from ferry.store import open_store

__all__ = ["DEFAULT_LISTEN", "bind_socket", "parse_listen_address", "run_server"]

DEFAULT_LISTEN = "127.0.0.1:4280"
_SHUTDOWN_GRACE_SECONDS = 5


def parse_listen_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:4280"``, ``"[::1]:4280"`` or ``":4280"`` (loopback) → (host, port).

    Raises ``ValidationError`` naming the address and the accepted forms.
    """
    host, sep, port_text = text.strip().rpartition(":")
    hint = "write it as HOST:PORT, e.g. 127.0.0.1:4280 or [::1]:4280"
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValidationError(f"invalid listen address {text!r}", hint=hint)
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValidationError(
                f"invalid listen address {text!r}: {host!r} is not an IP address", hint=hint
            ) from None
        host = "127.0.0.1"
    return host, int(port_text)


def bind_socket(text: str) -> socket.socket:
    """A listening TCP socket on the address ``text``. Raises ``UnavailableError`` if it
    cannot be bound (in use, not an address of this machine)."""
    host, port = parse_listen_address(text)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise UnavailableError(
            f"cannot listen on {text}: {exc.strerror}",
            hint="stop whatever uses that port, or choose another address",
        ) from exc
    return sock


@contextmanager
def _stop_signals_recorded() -> Iterator[list[int]]:
    """Record SIGTERM/SIGINT instead of dying on them.

    uvicorn handles these signals itself (graceful shutdown) and then re-raises
    them against the handlers it found; recording them here lets ``run_server``
    return normally, so the store is closed and the exit status is 0.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda number, _frame: received.append(number))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_server(
    home: Path,
    listen: list[str],
    store_url: str | None = None,
    *,
    registry: str | None = None,
    host_down_after: float = 10.0,
    log_level: str = "info",
    latency_file: Path | None = None,
    rate_limits: RateLimits | None = None,
) -> None:
    """Run the control plane until SIGTERM/SIGINT. Blocking.

    Opens the store (``store_url``, default ``$home/server/state.db``), writes
    the admin token to ``$home/server/admin-token`` (0600) at first start, loads
    the secrets key (``ferry.secrets.keys.open_secrets_key``: refuses to start with a
    missing or wrong key while secrets are stored) and serves on every address of
    ``listen`` (default ``127.0.0.1:4280``). It holds ``$home/server/server.lock``
    while it runs, so a second server or a key rotation cannot use the directory.
    ``registry`` (default ``$FERRY_REGISTRY``) is what ``/v1/platform/info``
    tells agents to pull from. ``latency_file`` (JSON of region-pair RTTs, see
    ``ferry.autoscale.load_latency_file``) orders capacity fallbacks and the
    autoscaler's "nearest region"; without it the order is alphabetical.
    ``rate_limits``: requests per second per token (default ``RateLimits()``).
    Raises ``FerryError`` subclasses with a user-facing sentence for bad
    addresses, busy ports, an unusable store or latency file, a bad secrets key.
    Returns normally after a graceful shutdown on SIGTERM or SIGINT.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    distances = load_latency_file(latency_file) if latency_file is not None else None
    if distances is None:
        logging.getLogger("ferry.server").info(
            "no --latency file: capacity fallback picks regions alphabetically"
        )
    home = home.expanduser().resolve()
    server_dir = home / "server"
    url = store_url or f"sqlite:///{server_dir / 'state.db'}"
    with hold_server_lock(server_dir):
        _serve(home, listen, url, registry, host_down_after, log_level, distances, rate_limits)


def _serve(
    home: Path,
    listen: list[str],
    url: str,
    registry: str | None,
    host_down_after: float,
    log_level: str,
    distances: RegionDistances | None,
    rate_limits: RateLimits | None,
) -> None:
    server_dir = home / "server"
    sockets = [bind_socket(address) for address in (listen or [DEFAULT_LISTEN])]
    store = open_store(url)
    try:
        secrets_key = open_secrets_key(server_dir, sealed_key_ids(store))
        token = ensure_admin_token(server_dir / "admin-token")
        app = create_app(
            store,
            admin_token=token,
            host_down_after=host_down_after,
            distances=distances,
            secrets_key=secrets_key.key,
            rate_limits=rate_limits,
            cert_settings=cert_settings_from_env(os.environ),
            registry=registry if registry is not None else os.environ.get("FERRY_REGISTRY", ""),
        )
        config = uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=_SHUTDOWN_GRACE_SECONDS,
        )
        logging.getLogger("ferry.server").info(
            "ferry server listening on %s", ", ".join(listen or [DEFAULT_LISTEN])
        )
        with _stop_signals_recorded() as received:
            uvicorn.Server(config).run(sockets=sockets)
        if received:
            logging.getLogger("ferry.server").info(
                "ferry server stopped by %s", signal.Signals(received[0]).name
            )
    except OSError as exc:
        raise UnavailableError(f"the control plane stopped: {exc}") from exc
    finally:
        for sock in sockets:
            sock.close()
        store.close()
