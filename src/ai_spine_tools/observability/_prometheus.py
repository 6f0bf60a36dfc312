"""``GET /metrics`` in Prometheus text (or OpenMetrics) form, written by ``prometheus_client``.

Imported only when a scraper asks for it (``Accept: text/plain`` or
``application/openmetrics-text``, or ``?format=prometheus``), so ``import ai_spine_tools`` never
loads ``prometheus_client``. The figures are the same ones the JSON form shows (the whole
instance when it runs several workers), turned into conventionally named families:

- ``ai_spine_requests_total{tool,status,code}`` and the
  ``ai_spine_request_duration_seconds{tool}`` histogram (``prometheus_client``'s default buckets);
- ``ai_spine_requests_in_flight``, ``ai_spine_requests_queued``,
  ``ai_spine_requests_overloaded_total``, ``ai_spine_uptime_seconds``, ``ai_spine_workers``,
  ``ai_spine_tool_info{tool,version,sdk}``;
- cache: ``ai_spine_cache_hits_total`` / ``_misses_total{tool,level}`` (``l1``, ``l2``),
  ``ai_spine_cache_evictions_total``, ``ai_spine_cache_errors_total``, ``ai_spine_cache_keys``,
  ``ai_spine_result_cache_hits_total`` / ``_misses_total``;
- breakers: ``ai_spine_circuit_breaker_state{tool,breaker,state}`` (1 for the current state),
  ``ai_spine_circuit_breaker_calls_total{tool,breaker,outcome}``,
  ``ai_spine_circuit_breaker_opened_total``;
- pools: ``ai_spine_pool_connections{tool,pool,state}`` (idle, in_use), ``ai_spine_pool_size``,
  ``ai_spine_pool_max_size``, ``ai_spine_pool_waiting``, ``ai_spine_pool_acquired_total``,
  ``ai_spine_pool_acquire_timeouts_total``, ``ai_spine_pool_acquire_wait_avg_seconds`` and
  ``_max_seconds``; for the process pool also ``ai_spine_pool_busy`` and
  ``ai_spine_pool_restarts_total`` (its ``waiting`` is the calls queued for a worker);
- diagnostics: ``ai_spine_event_loop_lag_seconds`` (the last check),
  ``ai_spine_event_loop_lag_max_seconds``, ``ai_spine_event_loop_blocked_total``,
  ``ai_spine_requests_concurrency_limit``;
- process: ``process_resident_memory_bytes``, ``process_cpu_seconds_total``, ``process_threads``,
  ``ai_spine_cpu_usage_percent`` (summed over workers);
- auth: ``ai_spine_auth_rejected_total``, ``ai_spine_auth_requests_total{tool,key_id}``;
- custom: per name, ``ai_spine_custom_<name>_total`` (counters), ``ai_spine_custom_<name>``
  (gauges) and ``ai_spine_custom_<name>_seconds`` histograms (timers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ai_spine_tools.observability._histogram import LatencyHistogram
from ai_spine_tools.observability._metrics import ToolMetrics

__all__ = ["render", "render_many"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_BREAKER_STATES = ("closed", "half_open", "open")


def render(part: dict[str, Any], *, accept: str) -> tuple[bytes, str]:
    """Return the exposition body of one tool's figures (``part``: ``metrics``, ``figures``,
    ``tool``, ``version``, ``sdk``, ``workers``) and its content type, in the format ``accept``
    asks for."""
    return render_many([part], accept=accept)


def render_many(parts: list[dict[str, Any]], *, accept: str) -> tuple[bytes, str]:
    """As ``render``, for several tools served together: one family per name, each tool's
    samples in it under its ``tool`` label."""
    encode, content_type = choose_encoder(accept)
    return encode(_Merged([_Collector(**part) for part in parts])), content_type


class _Merged:
    """The families of several collectors, merged by name (a name appears once in a scrape)."""

    def __init__(self, collectors: list[_Collector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for collector in self.collectors:
            for family in collector.collect():
                known = families.get(family.name)
                if known is None:
                    families[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from families.values()


class _Collector:
    """A one-off ``prometheus_client`` collector over one set of figures."""

    def __init__(
        self,
        metrics: ToolMetrics,
        figures: dict[str, Any],
        *,
        tool: str,
        version: str,
        sdk: str,
        workers: int,
    ) -> None:
        self.metrics = metrics
        self.figures = figures
        self.tool = tool
        self.version = version
        self.sdk = sdk
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._cache(self.figures.get("cache") or {})
        yield from self._breakers(self.figures.get("breakers") or {})
        yield from self._pools(self.figures.get("pools") or {})
        yield from self._process(self.figures.get("resources") or {})
        yield from self._auth(self.figures.get("auth"))
        yield from self._custom()

    def _requests(self) -> Iterator[Metric]:
        tool, metrics = self.tool, self.metrics
        info = GaugeMetricFamily(
            "ai_spine_tool_info", "The tool served", labels=["tool", "version", "sdk"]
        )
        info.add_metric([tool, self.version, self.sdk], 1)
        yield info
        requests = CounterMetricFamily(
            "ai_spine_requests",
            "Executions answered, by outcome and error code",
            labels=["tool", "status", "code"],
        )
        requests.add_metric([tool, "success", "OK"], metrics.total - metrics.errors)
        for code, n in sorted(metrics.by_code.items()):
            requests.add_metric([tool, "error", code], n)
        yield requests
        yield _histogram(
            "ai_spine_request_duration_seconds",
            "Time from receiving an execution to answering it",
            tool,
            metrics.latency,
        )
        concurrency = self.figures.get("concurrency") or {}
        yield _gauge(
            "ai_spine_requests_in_flight",
            "Executions running",
            tool,
            concurrency.get("in_flight", 0),
        )
        yield _gauge(
            "ai_spine_requests_queued",
            "Executions waiting for a slot",
            tool,
            concurrency.get("queued", 0),
        )
        yield _counter(
            "ai_spine_requests_overloaded",
            "Executions refused with 503 OVERLOADED",
            tool,
            concurrency.get("rejected", 0),
        )
        yield _gauge(
            "ai_spine_uptime_seconds",
            "Seconds since the instance started",
            tool,
            metrics.uptime_seconds(),
        )
        yield _gauge("ai_spine_workers", "Worker processes reporting", tool, self.workers)
        if "limit" in concurrency:
            yield _gauge(
                "ai_spine_requests_concurrency_limit",
                "Executions one worker runs at once before queueing",
                tool,
                concurrency["limit"],
            )

    def _cache(self, cache: dict[str, Any]) -> Iterator[Metric]:
        if not cache:
            return
        tool = self.tool
        hits = CounterMetricFamily(
            "ai_spine_cache_hits", "Cache lookups answered", labels=["tool", "level"]
        )
        misses = CounterMetricFamily(
            "ai_spine_cache_misses", "Cache lookups not answered", labels=["tool", "level"]
        )
        for level in ("l1", "l2"):
            figures = cache.get(level)
            if isinstance(figures, dict):
                hits.add_metric([tool, level], figures.get("hits", 0))
                misses.add_metric([tool, level], figures.get("misses", 0))
        yield hits
        yield misses
        yield _counter(
            "ai_spine_cache_evictions",
            "Entries evicted from memory",
            tool,
            cache.get("evictions", 0),
        )
        yield _counter(
            "ai_spine_cache_errors", "Failed Redis commands", tool, cache.get("redis_errors", 0)
        )
        l1 = cache.get("l1") or {}
        yield _gauge("ai_spine_cache_keys", "Entries in the memory cache", tool, l1.get("keys", 0))
        results = cache.get("results") or {}
        if results.get("enabled"):
            yield _counter(
                "ai_spine_result_cache_hits",
                "Executions answered from the cache",
                tool,
                results.get("hits", 0),
            )
            yield _counter(
                "ai_spine_result_cache_misses",
                "Executions the cache did not answer",
                tool,
                results.get("misses", 0),
            )

    def _breakers(self, breakers: dict[str, Any]) -> Iterator[Metric]:
        if not breakers:
            return
        labels = ["tool", "breaker"]
        state = GaugeMetricFamily(
            "ai_spine_circuit_breaker_state",
            "1 for the circuit's current state",
            labels=[*labels, "state"],
        )
        calls = CounterMetricFamily(
            "ai_spine_circuit_breaker_calls",
            "Calls through the circuit, by outcome",
            labels=[*labels, "outcome"],
        )
        opened = CounterMetricFamily(
            "ai_spine_circuit_breaker_opened", "Times the circuit opened", labels=labels
        )
        for name, figures in breakers.items():
            for value in _BREAKER_STATES:
                state.add_metric([self.tool, name, value], float(figures.get("state") == value))
            for outcome, key in (
                ("success", "successes"),
                ("failure", "failures"),
                ("rejected", "rejected"),
            ):
                calls.add_metric([self.tool, name, outcome], figures.get(key, 0))
            opened.add_metric([self.tool, name], figures.get("opened", 0))
        yield state
        yield calls
        yield opened

    def _pools(self, pools: dict[str, Any]) -> Iterator[Metric]:
        if not pools:
            return
        labels = ["tool", "pool"]
        connections = GaugeMetricFamily(
            "ai_spine_pool_connections", "Pooled connections by state", labels=[*labels, "state"]
        )
        size = GaugeMetricFamily("ai_spine_pool_size", "Open pooled connections", labels=labels)
        most = GaugeMetricFamily("ai_spine_pool_max_size", "Pool size limit", labels=labels)
        waiting = GaugeMetricFamily(
            "ai_spine_pool_waiting", "Callers waiting for a connection or worker", labels=labels
        )
        acquired = CounterMetricFamily(
            "ai_spine_pool_acquired", "Connections handed out", labels=labels
        )
        timeouts = CounterMetricFamily(
            "ai_spine_pool_acquire_timeouts", "Waits for a connection that timed out", labels=labels
        )
        wait_avg = GaugeMetricFamily(
            "ai_spine_pool_acquire_wait_avg_seconds",
            "Mean wait to get a pooled connection",
            labels=labels,
        )
        wait_max = GaugeMetricFamily(
            "ai_spine_pool_acquire_wait_max_seconds",
            "Longest wait to get a pooled connection",
            labels=labels,
        )
        busy = GaugeMetricFamily(
            "ai_spine_pool_busy", "Process-pool workers running a call", labels=labels
        )
        restarts = CounterMetricFamily(
            "ai_spine_pool_restarts",
            "Process-pool workers replaced (stopped past a deadline, or crashed)",
            labels=labels,
        )
        for name, figures in pools.items():
            pool = [self.tool, name]
            _add(busy, pool, figures, "busy")
            _add(restarts, pool, figures, "restarts")
            for key in ("idle", "in_use"):
                if key in figures:
                    connections.add_metric([*pool, key], figures[key])
            _add(size, pool, figures, "size", "open")
            _add(most, pool, figures, "max_size", "max_connections")
            _add(waiting, pool, figures, "waiting", "queued")
            _add(acquired, pool, figures, "acquired")
            _add(timeouts, pool, figures, "acquire_timeouts")
            wait = figures.get("acquire_wait_ms")
            if isinstance(wait, dict):
                wait_avg.add_metric(pool, wait.get("avg", 0.0) / 1000.0)
                wait_max.add_metric(pool, wait.get("max", 0.0) / 1000.0)
        yield from (connections, size, most, waiting, acquired, timeouts, wait_avg, wait_max)
        yield from (family for family in (busy, restarts) if family.samples)

    def _process(self, resources: dict[str, Any]) -> Iterator[Metric]:
        if not resources:
            return
        yield GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory of the worker processes, summed",
            value=resources.get("memory_usage_bytes", 0),
        )
        yield CounterMetricFamily(
            "process_cpu_seconds",
            "CPU time (user and system) of the worker processes, summed",
            value=resources.get("cpu_seconds_total", 0),
        )
        yield GaugeMetricFamily(
            "process_threads", "Threads of the worker processes", value=resources.get("threads", 0)
        )
        yield _gauge(
            "ai_spine_cpu_usage_percent",
            "CPU use of the worker processes, summed",
            self.tool,
            resources.get("cpu_usage_percent", 0.0),
        )
        lag = resources.get("event_loop_lag_ms")
        if isinstance(lag, dict):
            yield _gauge(
                "ai_spine_event_loop_lag_seconds",
                "How late the event loop ran the last scheduled check (worst worker)",
                self.tool,
                lag.get("current", 0.0) / 1000.0,
            )
            yield _gauge(
                "ai_spine_event_loop_lag_max_seconds",
                "The worst event-loop lag since start",
                self.tool,
                lag.get("max", 0.0) / 1000.0,
            )
        blocked = resources.get("event_loop_blocked")
        if isinstance(blocked, dict):
            yield _counter(
                "ai_spine_event_loop_blocked",
                "Times the event loop was blocked past the threshold (by an execute or else)",
                self.tool,
                blocked.get("total", 0),
            )

    def _auth(self, auth: dict[str, Any] | None) -> Iterator[Metric]:
        if not auth:
            return
        yield _counter(
            "ai_spine_auth_rejected",
            "Requests refused with 401",
            self.tool,
            auth.get("rejected", 0),
        )
        by_key = CounterMetricFamily(
            "ai_spine_auth_requests", "Authenticated requests by key id", labels=["tool", "key_id"]
        )
        for key_id, n in sorted((auth.get("requests_by_key") or {}).items()):
            by_key.add_metric([self.tool, key_id], n)
        yield by_key

    def _custom(self) -> Iterator[Metric]:
        custom, tool = self.metrics.custom, self.tool
        for name, value in sorted(custom.counters.items()):
            yield _counter(_custom_name(name), f"Custom counter {name}", tool, value)
        for name, value in sorted(custom.gauges.items()):
            yield _gauge(_custom_name(name), f"Custom gauge {name}", tool, value)
        for name, histogram in sorted(custom.timers.items()):
            yield _histogram(
                _custom_name(name) + "_seconds", f"Custom timer {name}", tool, histogram
            )


def _custom_name(name: str) -> str:
    return "ai_spine_custom_" + _UNSAFE.sub("_", name)


def _gauge(name: str, documentation: str, tool: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["tool"])
    family.add_metric([tool], value)
    return family


def _counter(name: str, documentation: str, tool: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["tool"])
    family.add_metric([tool], value)
    return family


def _histogram(
    name: str, documentation: str, tool: str, histogram: LatencyHistogram
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["tool"])
    family.add_metric(
        [tool],
        [(_le(bound), count) for bound, count in histogram.prometheus_buckets()],
        sum_value=histogram.sum / 1000.0,
    )
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


def _add(family: Metric, labels: list[str], figures: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = figures.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            family.add_metric(labels, value)  # type: ignore[attr-defined]
            return
