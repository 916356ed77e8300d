"""The edge's TLS transport: OpenSSL reads and writes the client's socket itself.

uvloop's TLS runs OpenSSL over two memory BIOs behind its ``SSLProtocol`` (a TCP
transport, an SSL protocol, its app transport, two BIOs and an ``ssl.SSLObject``
per connection): about an eighth of the edge's CPU on new handshakes
(bench/RESULTS.md, 2026-12-04 evening). Here each accepted socket goes to
CPython's ``_ssl`` as it is (``SSLContext._wrap_socket``): OpenSSL calls ``recv``
and ``send`` on the descriptor; the loop only says when it is readable or writable.

``TlsAcceptor`` (``ferry.proxy.tls_accept``) makes a ``TlsTransport`` per accepted
connection; the transport does the handshake, then gives the connection to the
protocol its factory makes (an ``asyncio.Protocol``, flow control both ways).
A socket is closed only once the client has closed its side or ``linger``
seconds passed (``_linger``, ``_drain``): closing one with unread bytes sends a
reset that can destroy the answer (or alert) before the client read it.

Event-loop thread only. The listener's context and its SNI callback are
``ferry.tls.edge_tls``'s: the callback gets the transport as its connection and
switches its ``context``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ferry.proxy.tls_accept import TlsAcceptor

__all__ = ["TlsTransport"]

log = logging.getLogger(__name__)

_HANDSHAKE = 0  # waiting for the client's handshake messages
_OPEN = 1  # the protocol has the connection
_CLOSING = 2  # close() called: sending what is buffered, then close_notify
_LINGER = 3  # close_notify sent: dropping input until the client's close_notify or EOF
_DRAIN = 4  # a handshake failed (its alert and FIN sent): dropping raw input until EOF
_CLOSED = 5

_READ_SIZE = 65536
#: The most plaintext one TLS record carries; ``SSL_read`` returns one record at most.
_FULL_RECORD = 16384
_WantRead = ssl.SSLWantReadError
_WantWrite = ssl.SSLWantWriteError


class TlsTransport(asyncio.Transport):
    """One client connection over TLS; see the module docstring."""

    __slots__ = (
        "__weakref__", "_acceptor", "_buffer", "_buffered", "_fd", "_high", "_loop", "_low",
        "_paused", "_peer", "_protocol", "_reading", "_sock", "_ssl", "_state",
        "_write_paused", "_writing",
    )  # fmt: skip

    def __init__(
        self,
        acceptor: TlsAcceptor,
        sock: socket.socket,
        peer: Any,
    ) -> None:
        """Wrap an accepted, non-blocking ``sock`` and wait for the client's hello."""
        self._acceptor = acceptor
        self._loop = acceptor.loop
        self._sock = sock
        self._fd = sock.fileno()
        self._peer = peer
        self._protocol: asyncio.Protocol | None = None
        self._buffer: list[bytes] = []  # [0] is what OpenSSL was last asked to write
        self._buffered = 0
        self._high = 65536
        self._low = 16384
        self._paused = False  # the protocol paused reading
        self._write_paused = False  # the protocol was told to pause writing
        self._writing = False  # a writer callback is registered
        self._reading = False  # a reader callback is registered
        self._state = _HANDSHAKE
        # The SNI callback gets this transport (``owner``) and may switch ``context``.
        self._ssl: Any = acceptor.wrap(sock, self)
        acceptor.expire_at(self, acceptor.handshake_timeout)
        self._start_reading()

    # what the SNI callback uses ---------------------------------------------------------
    @property
    def context(self) -> ssl.SSLContext:
        """The context of the TLS session (the SNI callback may switch it)."""
        context: ssl.SSLContext = self._ssl.context
        return context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._ssl.context = context

    # events -----------------------------------------------------------------------------
    def _on_readable(self) -> None:
        state = self._state
        if state == _OPEN:
            self._read()
        elif state == _HANDSHAKE:
            self._handshake()
        elif state in (_CLOSING, _LINGER):
            self._read()  # read and drop: the protocol is done with the connection
        elif state == _DRAIN:
            self._drop_input()
        if self._buffer and self._state <= _CLOSING and not self._writing:
            self._flush()  # a write that waited for input (never with TLS 1.3)

    def _on_writable(self) -> None:
        if self._state == _HANDSHAKE:
            self._handshake()
        elif self._state <= _CLOSING:
            self._flush()
        else:
            self._stop_writing()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except _WantRead:
            self._stop_writing()
            return
        except _WantWrite:
            self._start_writing()
            return
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake from %s failed: %s", self._peer, exc)
            self._drain()  # the alert OpenSSL wrote, if any, reaches the client
            return
        self._stop_writing()
        self._acceptor.forget(self)
        self._state = _OPEN
        protocol = self._acceptor.factory()
        self._protocol = protocol
        protocol.connection_made(self)
        if self._state == _OPEN and not self._paused:
            self._read()  # the request usually came with the client's Finished

    def _read(self) -> None:
        read = self._ssl.read
        while True:
            try:
                data = read(_READ_SIZE)
            except _WantRead:
                return
            except _WantWrite:
                self._start_writing()  # OpenSSL must send before it can read
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            except (ssl.SSLError, OSError) as exc:
                self._abort(exc)
                return
            if self._state != _OPEN:  # closing or lingering: what the client sends is dropped
                if not data:
                    if self._state == _LINGER:
                        self._finish()  # the client's close_notify or EOF: done
                    else:
                        self._stop_reading()  # EOF stays readable; closing goes on
                    return
                continue
            if not data:
                self._eof()
                return
            protocol = self._protocol
            if protocol is not None:
                protocol.data_received(data)
            if self._state != _OPEN or self._paused:
                return
            if len(data) < _FULL_RECORD and not self._ssl.pending():
                # Likely the end of what the client sent: not asking again spares a
                # recv() that would fail with EAGAIN, and its exception. Anything still
                # in the socket keeps it readable (the loop's poll is level-triggered).
                return

    def _eof(self) -> None:
        self._stop_reading()
        protocol = self._protocol
        if protocol is not None:
            protocol.eof_received()  # a TLS connection cannot stay half-open: close anyway
        self.close()

    def _flush(self) -> None:
        buffer = self._buffer
        write = self._ssl.write
        while buffer:
            try:
                write(buffer[0])  # the same bytes again after "want write", as OpenSSL needs
            except _WantWrite:
                self._start_writing()
                return
            except _WantRead:
                self._stop_writing()  # retried when input comes (_on_readable)
                return
            except (ssl.SSLError, OSError) as exc:
                self._abort(exc)
                return
            self._buffered -= len(buffer[0])
            del buffer[0]
            if len(buffer) > 1:
                buffer[:] = [b"".join(buffer)]
        self._stop_writing()
        if self._write_paused and self._buffered <= self._low and self._protocol is not None:
            self._write_paused = False
            self._protocol.resume_writing()
        if self._state == _CLOSING:
            self._send_close_notify()

    def _send_close_notify(self) -> None:
        try:
            self._ssl.shutdown()
        except _WantRead:
            self._linger()  # ours is sent; the client's is to come
            return
        except _WantWrite:
            self._start_writing()  # not sent yet (a full socket): _on_writable comes back
            return
        except (ssl.SSLError, OSError):
            pass
        self._finish()  # both sides' close_notify done, or the connection is gone

    def _linger(self) -> None:
        """Our close_notify is sent: drop input until the client's or its EOF, then close.

        No FIN before that: uvloop's TLS takes an EOF for a broken connection and drops
        what it had not handed over yet, so a uvloop client would lose the end of a
        large answer (asyncio's and uvloop's own servers wait the same way)."""
        self._state = _LINGER
        self._stop_writing()
        self._connection_lost(None)
        self._wait_for_eof()

    def _drain(self) -> None:
        """After a failed handshake: FIN behind the alert, then drop input until EOF."""
        self._state = _DRAIN
        self._stop_writing()
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._finish()
            return
        self._wait_for_eof()

    def _wait_for_eof(self) -> None:
        if self._acceptor.closed:  # the edge is stopping: no sweep would end the wait
            self._finish()
            return
        self._acceptor.expire_at(self, self._acceptor.linger)
        self._start_reading()  # stopped at EOF or by pause_reading: EOF is what it waits for

    def _drop_input(self) -> None:
        try:
            while self._sock.recv(_READ_SIZE):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish()

    def _finish(self) -> None:
        """Close the socket now and let go of OpenSSL's connection."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._acceptor.forget(self)
        self._stop_reading()
        self._stop_writing()
        self._sock.close()
        self._ssl = None
        self._buffer.clear()
        self._connection_lost(None)

    def _abort(self, exc: Exception | None) -> None:
        if self._state != _CLOSED:
            self._connection_lost(exc)  # first: _finish would report None
            self._finish()

    def _connection_lost(self, exc: Exception | None) -> None:
        """Tell the protocol once (soon, as asyncio does); it and this transport then no
        longer hold each other."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            self._loop.call_soon(protocol.connection_lost, exc)

    def _start_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    # asyncio.Transport ------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != _OPEN or not data:
            return
        if not self._buffer:
            try:
                self._ssl.write(data)
                return
            except _WantWrite:
                self._start_writing()
            except _WantRead:
                pass  # retried when input comes
            except (ssl.SSLError, OSError) as exc:
                self._abort(exc)
                return
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._buffer.append(chunk)
        self._buffered += len(chunk)
        if not self._write_paused and self._buffered > self._high and self._protocol is not None:
            self._write_paused = True
            self._protocol.pause_writing()

    def close(self) -> None:
        """Send what is buffered, then ``close_notify``; ``connection_lost(None)`` follows."""
        if self._state == _OPEN:
            self._state = _CLOSING
            if not self._buffer:
                self._send_close_notify()
        elif self._state == _HANDSHAKE:
            self._finish()

    def abort(self) -> None:
        """Close the socket at once, buffered data lost; ``connection_lost(None)`` follows."""
        self._abort(None)

    def is_closing(self) -> bool:
        return self._state != _OPEN

    def pause_reading(self) -> None:
        if self._state == _OPEN and not self._paused:
            self._paused = True
            self._stop_reading()

    def resume_reading(self) -> None:
        if self._state == _OPEN and self._paused:
            self._paused = False
            self._start_reading()
            if self._ssl.pending():  # a record OpenSSL already read: no event will say so
                self._loop.call_soon(self._on_readable)

    def is_reading(self) -> bool:
        return self._state == _OPEN and not self._paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 65536 if high is None else high
        self._low = (self._high // 4 if high is not None else 16384) if low is None else low

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def can_write_eof(self) -> bool:
        return False  # TLS 1.2 and 1.3 have no half-close: close_notify ends both ways

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS connection cannot send EOF and keep receiving")

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[return-value]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname``, ``socket``; while open, ``ssl_object``
        (``selected_alpn_protocol()``…), ``sslcontext`` and ``cipher``."""
        if name == "peername":
            return self._peer
        if name == "socket":
            return self._sock
        if name == "sockname":
            with contextlib.suppress(OSError):
                return self._sock.getsockname()
            return default
        tls = self._ssl
        if tls is None:
            return default
        if name == "ssl_object":
            return tls
        if name == "sslcontext":
            return tls.context
        if name == "cipher":
            return tls.cipher()
        return default

    def expire(self) -> None:
        """The handshake or the linger took too long (the acceptor's sweep)."""
        self._finish()
