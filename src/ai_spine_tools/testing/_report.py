"""``LoadTestReport``: what a load test measured, as data, JSON, a table and a chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ai_spine_tools.exceptions import MissingExtraError

__all__ = ["LatencySummary", "LoadTestReport", "TimelinePoint", "percentile"]

_MAX_TIMELINE_ROWS = 60


def percentile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of sorted values by the nearest-rank method."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(len(ordered) * q / 100.0))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    """Latency of the requests, in milliseconds, as the client measured it."""

    min_ms: float = 0.0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0

    @classmethod
    def of(cls, ordered: Sequence[float]) -> LatencySummary:
        """Summarise sorted latencies."""
        if not ordered:
            return cls()
        return cls(
            min_ms=round(ordered[0], 3),
            mean_ms=round(math.fsum(ordered) / len(ordered), 3),
            p50_ms=round(percentile(ordered, 50), 3),
            p90_ms=round(percentile(ordered, 90), 3),
            p95_ms=round(percentile(ordered, 95), 3),
            p99_ms=round(percentile(ordered, 99), 3),
            max_ms=round(ordered[-1], 3),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelinePoint:
    """The requests that completed during one second of the run."""

    second: int
    requests: int
    errors: int
    requests_per_second: float
    """``requests`` over the part of this second the run lasted (the last one may be partial)."""
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadTestReport:
    """The outcome of ``load_test``: totals, throughput, latency, errors and a timeline.

    ``requests_per_second`` is completed requests over the wall time of the whole run.
    ``interrupted`` counts requests still in flight when the run had to cancel them (after its
    grace period); they are not in the totals. ``tool_metrics`` is the tool's own metrics
    snapshot at the end (cumulative since the tool or server started).
    """

    target: str
    mode: str
    """``"in-process"`` or ``"http"``."""
    concurrent_users: int
    duration_s: float
    requests_limit: int | None
    think_time_s: tuple[float, float]
    started_at: str
    elapsed_s: float
    stopped_by: str
    """``"duration"`` or ``"requests"``: which bound ended the run."""
    total_requests: int
    successes: int
    errors: int
    interrupted: int
    error_rate: float
    requests_per_second: float
    latency: LatencySummary
    errors_by_code: dict[str, int] = field(default_factory=dict)
    status_codes: dict[str, int] = field(default_factory=dict)
    timeline: tuple[TimelinePoint, ...] = ()
    tool_metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        data = asdict(self)
        data["think_time_s"] = list(self.think_time_s)
        data["timeline"] = [asdict(point) for point in self.timeline]
        return data

    def to_json(self, *, indent: int = 2) -> str:
        """Return the report as a JSON document."""
        return msgspec.json.format(msgspec.json.encode(self.to_dict()), indent=indent).decode()

    def summary(self) -> str:
        """Return a readable table of the results."""
        lo, hi = self.think_time_s
        limit = f", at most {self.requests_limit:,} requests" if self.requests_limit else ""
        lat = self.latency
        think = _secs(lo) if lo == hi else f"{lo:g}-{_secs(hi)}"
        lines = [
            f"Load test of {self.target} ({self.mode})",
            f"  {self.concurrent_users} users for up to {_secs(self.duration_s)}{limit}, "
            f"think time {think}; stopped by {self.stopped_by} "
            f"after {_secs(self.elapsed_s)}",
            "",
            f"  {'requests':<12}{self.total_requests:>10,}   ({self.successes:,} ok, "
            f"{self.errors:,} errors, error rate {self.error_rate:.2%})",
            f"  {'throughput':<12}{self.requests_per_second:>10,.1f}   requests/s",
        ]
        if self.interrupted:
            lines.append(f"  {'interrupted':<12}{self.interrupted:>10,}   (cancelled at the end)")
        heads = ("min", "mean", "p50", "p90", "p95", "p99", "max")
        values = (lat.min_ms, lat.mean_ms, lat.p50_ms, lat.p90_ms, lat.p95_ms, lat.p99_ms)
        lines += [
            "",
            "  latency ms  " + "".join(f"{h:>9}" for h in heads),
            "              " + "".join(f"{v:>9.2f}" for v in (*values, lat.max_ms)),
        ]
        if self.errors_by_code:
            lines += ["", "  errors by code"]
            for code, count in sorted(self.errors_by_code.items(), key=lambda kv: -kv[1]):
                share = count / self.total_requests if self.total_requests else 0.0
                lines.append(f"    {code:<28}{count:>8,}  {share:>7.2%}")
        if self.timeline:
            lines += ["", "  second  requests    req/s   errors   p50 ms   p99 ms"]
            shown = self.timeline[:_MAX_TIMELINE_ROWS]
            lines += [
                f"  {p.second:>6}{p.requests:>10,}{p.requests_per_second:>9,.1f}{p.errors:>9,}"
                f"{p.p50_ms:>9.2f}{p.p99_ms:>9.2f}"
                for p in shown
            ]
            if len(self.timeline) > len(shown):
                lines.append(f"  ... {len(self.timeline) - len(shown)} more seconds in to_json()")
        requests = (self.tool_metrics or {}).get("requests")
        if isinstance(requests, dict):
            lines += [
                "",
                f"  tool metrics: {requests.get('total', 0):,} requests in total, "
                f"p50 {requests.get('p50_ms', 0)} ms, p99 {requests.get('p99_ms', 0)} ms, "
                f"{(self.tool_metrics or {}).get('errors', {}).get('total', 0):,} errors",
            ]
        return "\n".join(lines)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write a chart of latency (p50, p99) and throughput (ok, errors) per second to ``path``.

        The format follows the file's suffix (``.png``, ``.svg``, ``.pdf``). Needs matplotlib:
        ``pip install 'ai-spine-tools[testing]'``.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise MissingExtraError("LoadTestReport.plot", "matplotlib", "testing") from None
        points = self.timeline
        seconds = [p.second for p in points]
        figure = Figure(figsize=(10, 6.5), layout="constrained")
        latency, throughput = figure.subplots(2, 1, sharex=True)
        middles = [second + 0.45 for second in seconds]  # the middle of each throughput bar
        latency.plot(middles, [p.p50_ms for p in points], marker="o", label="p50")
        latency.plot(middles, [p.p99_ms for p in points], marker="o", label="p99")
        latency.set_ylabel("latency (ms)")
        latency.set_ylim(bottom=0)
        latency.grid(alpha=0.3)
        latency.legend(loc="upper right")
        ok = [p.requests_per_second * (1 - p.errors / max(p.requests, 1)) for p in points]
        failed = [p.requests_per_second - good for p, good in zip(points, ok, strict=True)]
        throughput.bar(seconds, ok, color="tab:green", label="ok", align="edge", width=0.9)
        throughput.bar(
            seconds, failed, bottom=ok, color="tab:red", label="errors", align="edge", width=0.9
        )
        throughput.set_ylabel("requests/s")
        throughput.set_xlabel("seconds since start")
        throughput.grid(alpha=0.3)
        throughput.legend(loc="upper right")
        figure.suptitle(
            title
            or f"{self.target}: {self.concurrent_users} users, "
            f"{self.requests_per_second:,.0f} req/s, p99 {self.latency.p99_ms:.3g} ms, "
            f"errors {self.error_rate:.1%}"
        )
        out = Path(path)
        figure.savefig(out, dpi=100)
        return out


def _secs(value: float) -> str:
    return f"{value:g} s" if value == int(value) else f"{value:.2f} s"
