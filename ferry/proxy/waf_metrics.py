"""The WAF's counters on the edge's ``/metrics``: per app and rule, per app and action.

``ferry_waf_requests_count{app,action}``: inspected requests by what the edge
did (``clean``: no rule matched; ``allowed``: rules matched under the block
threshold; ``detected``: rules matched in detect mode; ``blocked``: 403/413).
``ferry_waf_rule_matches_count{app,rule}``: how often each rule matched.
``ferry_waf_errors_count{app}``: requests the engine could not inspect;
``ferry_waf_load_failures_count{app}``: ``[waf]`` settings that did not load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

__all__ = ["WafCollector", "WafStats"]


class WafStats:
    """Plain counters; the edge's loop only."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.actions: dict[tuple[str, str], int] = {}
        self.rules: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.load_failures: dict[str, int] = {}

    def record(self, app: str, action: str, rule_ids: Iterable[int]) -> None:
        key = (app, action)
        self.actions[key] = self.actions.get(key, 0) + 1
        for rule_id in rule_ids:
            rule = (app, rule_id)
            self.rules[rule] = self.rules.get(rule, 0) + 1

    def record_error(self, app: str) -> None:
        self.errors[app] = self.errors.get(app, 0) + 1

    def record_load_failure(self, app: str) -> None:
        self.load_failures[app] = self.load_failures.get(app, 0) + 1


def _untyped(name: str, doc: str, rows: Iterable[tuple[dict[str, str], float]]) -> Metric:
    metric = Metric(name, doc, "unknown")
    for labels, value in rows:
        metric.add_sample(name, labels, value)
    return metric


class WafCollector(Collector):
    """Turns ``WafStats`` into metric families at scrape time."""

    def __init__(self, stats: WafStats, dropped_events: Callable[[], int]) -> None:
        self._stats = stats
        self._dropped = dropped_events

    def collect(self) -> Iterator[Metric]:
        s, region = self._stats, self._stats.region
        yield _untyped(
            "ferry_waf_requests_count",
            "Requests inspected by the WAF, by the action taken",
            (({"app": a, "region": region, "action": act}, n) for (a, act), n in s.actions.items()),
        )
        yield _untyped(
            "ferry_waf_rule_matches_count",
            "Matches of each WAF rule",
            (({"app": a, "region": region, "rule": str(r)}, n) for (a, r), n in s.rules.items()),
        )
        yield _untyped(
            "ferry_waf_errors_count",
            "Requests the WAF engine could not inspect",
            (({"app": a, "region": region}, n) for a, n in s.errors.items()),
        )
        yield _untyped(
            "ferry_waf_load_failures_count",
            "[waf] settings whose rule set did not load",
            (({"app": a, "region": region}, n) for a, n in s.load_failures.items()),
        )
        yield _untyped(
            "ferry_waf_events_dropped_count",
            "WAF events dropped because the buffer for the control plane was full",
            [({"region": region}, self._dropped())],
        )
