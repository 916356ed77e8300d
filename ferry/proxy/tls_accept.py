"""The edge's TLS listening sockets: accepting, and the timeouts of handshakes and closes.

``TlsAcceptor`` accepts on its listening sockets and wraps each connection in a
``TlsTransport`` (``ferry.proxy.tls_transport``: OpenSSL on the socket itself).
While ``use_event_loop`` says so — a TLS-ALPN-01 validation is pending, and
telling the validator from ordinary clients of the name needs the ClientHello's
ALPN, which only the memory-BIO path of ``ferry.tls.edge_tls`` peeks at — it
hands accepted sockets to the event loop's own TLS instead.

A sweep every quarter of the handshake timeout (at most every second) closes
the connections whose handshake or closing linger is over time: one timer per
listener, none per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ferry.proxy.tls_transport import TlsTransport

__all__ = ["TLS_LINGER", "TlsAcceptor", "listening_sockets"]

log = logging.getLogger(__name__)

#: Seconds a closed TLS connection waits for the client to close its side.
TLS_LINGER = 5.0
_ACCEPTS_PER_WAKEUP = 64
_PAUSE_ON_RESOURCE_ERROR = 1.0
#: Accept errors that say "no more resources for now": stop accepting for a second.
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def listening_sockets(
    host: str, port: int, *, reuse_port: bool = False, backlog: int = 1024
) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host``:``port`` (every address the
    name has, as ``loop.create_server`` binds). Raises ``OSError`` (none left open)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class TlsAcceptor:
    """Accepts TLS clients on ``sockets`` (owned from now on; closed by ``close``).

    ``context``: the listener's context (its SNI callback may switch a connection
    to another). ``factory``: the protocol of each connection once its handshake
    is done. ``use_event_loop``: asked once per wakeup; True hands that wakeup's
    connections to ``loop.connect_accepted_socket`` (see the module docstring).
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        context: ssl.SSLContext,
        factory: Callable[[], asyncio.Protocol],
        *,
        handshake_timeout: float,
        linger: float = TLS_LINGER,
        use_event_loop: Callable[[], bool] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.sockets = sockets
        self.context = context
        self.factory = factory
        self.handshake_timeout = handshake_timeout
        self.linger = linger
        self.use_event_loop = use_event_loop
        # CPython's private constructor of an SSL connection on a socket (what
        # SSLSocket is built on), without SSLSocket's Python layer.
        self.wrap_socket: Callable[..., Any] = context._wrap_socket  # type: ignore[attr-defined]
        self._deadlines: dict[TlsTransport, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._interval = min(1.0, max(handshake_timeout, 0.01) / 4)
        self.closed = False  # close() was called
        for sock in sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)
        self._sweeper = self.loop.call_later(self._interval, self._sweep)

    def wrap(self, sock: socket.socket, owner: object) -> Any:
        """OpenSSL's server side of ``sock`` with the listener's context
        (``_ssl._SSLSocket``); ``owner`` is what the SNI callback gets as its connection."""
        return self.wrap_socket(sock, True, None, owner=owner, session=None)

    def expire_at(self, transport: TlsTransport, seconds: float) -> None:
        """Close ``transport`` if it is still waiting ``seconds`` from now."""
        self._deadlines[transport] = self.loop.time() + seconds

    def forget(self, transport: TlsTransport) -> None:
        """``transport`` is no longer waiting for a deadline."""
        self._deadlines.pop(transport, None)

    @property
    def waiting(self) -> int:
        """Connections in their handshake or lingering after their close."""
        return len(self._deadlines)

    def _accept(self, listener: socket.socket) -> None:
        accept: Callable[[], tuple[int, Any]] = listener._accept  # type: ignore[attr-defined]
        family = listener.family
        event_loop = self.use_event_loop is not None and self.use_event_loop()
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                fd, peer = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            if event_loop:
                task = self.loop.create_task(self._event_loop_tls(sock))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                TlsTransport(self, sock, peer)

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> None:
        if exc.errno not in _RESOURCE_ERRORS:
            log.debug("accept on %s failed: %s", listener.getsockname(), exc)
            return
        # Out of descriptors or memory: retrying at once would spin; wait, then resume.
        log.warning("the TLS listener stops accepting for a second: %s", exc)
        fd = listener.fileno()
        self.loop.remove_reader(fd)

        def resume() -> None:
            if not self.closed:
                self.loop.add_reader(fd, self._accept, listener)

        self.loop.call_later(_PAUSE_ON_RESOURCE_ERROR, resume)

    async def _event_loop_tls(self, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(
                self.factory, sock, ssl=self.context, ssl_handshake_timeout=self.handshake_timeout
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("TLS handshake (event loop's TLS) failed: %s", exc)

    def _sweep(self) -> None:
        if self.closed:
            return
        now = self.loop.time()
        expired = [t for t, deadline in self._deadlines.items() if deadline <= now]
        for transport in expired:
            transport.expire()
        self._sweeper = self.loop.call_later(self._interval, self._sweep)

    def close(self) -> None:
        """Stop accepting; close the connections still in a handshake or lingering.
        Connections handed to their protocol are the protocol's to close."""
        if self.closed:
            return
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for sock in self.sockets:
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_reader(sock.fileno())
            sock.close()
        for transport in list(self._deadlines):
            transport.expire()
        for task in self._tasks:
            task.cancel()
