"""The edge's TLS listener, after the handshake: which protocol takes the connection, metrics.

``TlsHandoff`` is the protocol asyncio gets for each TLS connection; once the
handshake is done it hands the transport to HTTP/2 or HTTP/1.1 by the ALPN
agreed. ``TlsCollector`` exports the handshakes done and refused.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ferry.proxy.connection import ClientConnection
from ferry.proxy.http import HttpEdge
from ferry.tls.edge_tls import ACME_TLS_ALPN, EdgeTlsContexts

__all__ = ["TLS_HANDSHAKE_TIMEOUT", "TlsCollector", "TlsHandoff", "h2_protocol"]

#: Seconds a client has to finish its TLS handshake before the edge closes the connection.
TLS_HANDSHAKE_TIMEOUT = 10.0
_H2_MODULE = "ferry.proxy.h2conn"


def h2_protocol() -> Callable[[HttpEdge], asyncio.Protocol] | None:
    """``H2Connection`` (``ferry.proxy.h2conn``) when this build has it, else None: the
    edge then offers only ``http/1.1`` by ALPN."""
    if importlib.util.find_spec(_H2_MODULE) is None:
        return None
    factory: Callable[[HttpEdge], asyncio.Protocol] = importlib.import_module(
        _H2_MODULE
    ).H2Connection
    return factory


class TlsCollector(Collector):
    """TLS handshakes of the edge at scrape time: done on the HTTPS listener (by ALPN),
    and refused on any TLS listener (a name nobody has, or none)."""

    def __init__(
        self, region: str, contexts: tuple[EdgeTlsContexts, ...], done: dict[str, int]
    ) -> None:
        self._region = region
        self._contexts = contexts
        self._done = done

    def collect(self) -> Iterator[Metric]:
        done = CounterMetricFamily(
            "ferry_edge_tls_handshakes", "TLS handshakes completed", labels=["region", "alpn"]
        )
        for alpn, count in sorted(self._done.items()):
            done.add_metric([self._region, alpn], count)
        yield done
        refused = CounterMetricFamily(
            "ferry_edge_tls_refused",
            "TLS handshakes refused: SNI naming no certificate, or no SNI",
            labels=["region"],
        )
        refused.add_metric([self._region], sum(c.refused for c in self._contexts))
        yield refused


class TlsHandoff(asyncio.Protocol):
    """The protocol of a TLS listener, for the moment the handshake completes.

    asyncio calls ``connection_made`` once the handshake is done; the ALPN the
    client and edge agreed on picks the real protocol — ``H2Connection`` for
    ``h2``, ``ClientConnection`` (with ``tls=True``) otherwise — which takes
    over the transport. A TLS-ALPN-01 validation (``acme-tls/1``) needs only
    the handshake: it is closed at once. One small object per connection,
    nothing per request.
    """

    __slots__ = ("counts", "edge", "h2")

    def __init__(
        self,
        edge: HttpEdge,
        h2: Callable[[HttpEdge], asyncio.Protocol] | None,
        counts: dict[str, int],
    ) -> None:
        """``counts``: ALPN protocol ("none" without) -> handshakes done, for metrics."""
        self.edge = edge
        self.h2 = h2
        self.counts = counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        key = alpn or "none"
        self.counts[key] = self.counts.get(key, 0) + 1
        if alpn == ACME_TLS_ALPN:
            transport.close()
            return
        protocol: asyncio.Protocol
        if alpn == "h2" and self.h2 is not None:
            protocol = self.h2(self.edge)
        else:
            protocol = ClientConnection(self.edge, tls=True)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
