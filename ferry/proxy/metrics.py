"""What the edge measures, cheap on the hot path, exported in Prometheus text.

``EdgeStats`` keeps plain counters and fixed-bucket histograms in dicts (a
few dict operations per request); ``EdgeCollector`` turns them into metric
families only when ``/metrics`` is scraped; ``EdgeStats.summary()`` is the
small per-app digest the lead pushes to the control plane for ``ferry status``.

Names follow Fly's where they fit: ``fly_edge_http_responses_count``,
``fly_edge_http_response_time_seconds``, ``fly_edge_data_in``/``_out``,
``fly_app_concurrency``, ``fly_edge_tcp_connects_count``,
``fly_app_connect_time_seconds``. Counts are exposed untyped so the names stay
exactly Fly's (a Prometheus counter would gain ``_total``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["AppSummary", "EdgeCollector", "EdgeStats"]

#: Histogram bounds in seconds (Prometheus buckets, and the quantile grid of the summary).
BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 30.0, 60.0,
)  # fmt: skip


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.total += seconds

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (0 when empty)."""
        n = sum(self.counts)
        if n == 0:
            return 0.0
        rank, seen = q * n, 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1]
        return BOUNDS[-1]


@dataclass(frozen=True)
class AppSummary:
    """Per-app digest since the proxy started."""

    app: str
    requests: dict[str, int]  # "2xx" … "5xx" -> count
    bytes_in: int
    bytes_out: int
    p50_seconds: float
    p99_seconds: float


class EdgeStats:
    """Counters of one edge (one region). Single-threaded: the proxy's loop only."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.responses: dict[str, dict[int, int]] = {}  # app -> status -> count
        self.response_time: dict[str, _Histogram] = {}
        self.data_in: dict[str, int] = {}
        self.data_out: dict[str, int] = {}
        self.tcp_connects: dict[str, int] = {}
        self.unserved: dict[str, int] = {}  # app -> requests that found no machine with room
        self.connect_time: dict[str, _Histogram] = {}

    def record_response(
        self, app: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        """Count one HTTP response; a handful of dict operations (hot path)."""
        by_status = self.responses.get(app)
        if by_status is None:
            by_status = self.responses[app] = {}
        by_status[status] = by_status.get(status, 0) + 1
        hist = self.response_time.get(app)
        if hist is None:
            hist = self.response_time[app] = _Histogram()
            self.data_in.setdefault(app, 0)
            self.data_out.setdefault(app, 0)
        hist.counts[bisect_left(BOUNDS, seconds)] += 1  # _Histogram.observe, inlined
        hist.total += seconds
        if bytes_in:
            self.data_in[app] += bytes_in
        if bytes_out:
            self.data_out[app] += bytes_out

    def response_counts(self) -> list[tuple[str, int, int]]:
        """(app, status, responses) for every pair seen."""
        return [
            (app, status, count)
            for app, by_status in self.responses.items()
            for status, count in by_status.items()
        ]

    def record_unserved(self, app: str) -> None:
        """A request found no started machine under its limit (it was queued, woken or failed)."""
        self.unserved[app] = self.unserved.get(app, 0) + 1

    def record_connect(self, app: str, seconds: float) -> None:
        hist = self.connect_time.get(app)
        if hist is None:
            hist = self.connect_time[app] = _Histogram()
        hist.observe(seconds)

    def record_tcp_connect(self, app: str) -> None:
        self.tcp_connects[app] = self.tcp_connects.get(app, 0) + 1

    def record_tcp_bytes(self, app: str, bytes_in: int, bytes_out: int) -> None:
        self.data_in[app] = self.data_in.get(app, 0) + bytes_in
        self.data_out[app] = self.data_out.get(app, 0) + bytes_out

    def summary(self) -> dict[str, AppSummary]:
        """Per-app requests by status class, bytes, p50/p99 response time."""
        classes: dict[str, dict[str, int]] = {}
        for app, status, count in self.response_counts():
            by_class = classes.setdefault(app, {})
            name = f"{status // 100}xx"
            by_class[name] = by_class.get(name, 0) + count
        apps = set(classes) | set(self.data_in) | set(self.data_out)
        out = {}
        for app in sorted(apps):
            hist = self.response_time.get(app, _Histogram())
            out[app] = AppSummary(
                app,
                classes.get(app, {}),
                self.data_in.get(app, 0),
                self.data_out.get(app, 0),
                hist.quantile(0.5),
                hist.quantile(0.99),
            )
        return out


def _histogram_family(
    name: str, doc: str, region: str, hists: dict[str, _Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["app", "region"])
    for app, hist in hists.items():
        cumulative, buckets = 0, []
        for bound, count in zip((*BOUNDS, float("inf")), hist.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        family.add_metric([app, region], buckets, hist.total)
    return family


def _untyped(name: str, doc: str, labels: list[str], rows: list[tuple[list[str], float]]) -> Metric:
    metric = Metric(name, doc, "unknown")
    for values, value in rows:
        metric.add_sample(name, dict(zip(labels, values, strict=True)), value)
    return metric


class EdgeCollector(Collector):
    """Builds metric families from ``EdgeStats`` (and live load) at scrape time."""

    def __init__(self, stats: EdgeStats, load: Callable[[], dict[str, dict[str, int]]]) -> None:
        self._stats = stats
        self._load = load

    def collect(self) -> Iterator[Metric]:
        s, region = self._stats, self._stats.region
        yield _untyped(
            "fly_edge_http_responses_count",
            "HTTP responses sent by the edge",
            ["app", "region", "status"],
            [([app, region, str(status)], n) for app, status, n in s.response_counts()],
        )
        yield _histogram_family(
            "fly_edge_http_response_time_seconds",
            "Time from request headers to the end of the response",
            region,
            s.response_time,
        )
        for name, data, doc in (
            ("fly_edge_data_in", s.data_in, "Bytes received from clients"),
            ("fly_edge_data_out", s.data_out, "Bytes sent to clients"),
        ):
            yield _untyped(
                name, doc, ["app", "region"], [([a, region], v) for a, v in data.items()]
            )
        yield _untyped(
            "fly_edge_tcp_connects_count",
            "Raw TCP connections accepted",
            ["app", "region"],
            [([a, region], v) for a, v in s.tcp_connects.items()],
        )
        yield _histogram_family(
            "fly_app_connect_time_seconds",
            "Time to connect to a machine",
            region,
            s.connect_time,
        )
        gauge = GaugeMetricFamily(
            "fly_app_concurrency", "In-flight load per machine", labels=["app", "region", "machine"]
        )
        for app, machines in self._load().items():
            for machine_id, count in machines.items():
                gauge.add_metric([app, region, machine_id], count)
        yield gauge
