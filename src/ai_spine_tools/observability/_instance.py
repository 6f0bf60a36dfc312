"""One instance, several worker processes: ``/metrics`` and ``/health`` report them as one.

``ai-spine serve --workers N`` makes a fresh directory and names it in ``AI_SPINE_METRICS_DIR``.
Each worker writes its state there as ``worker-<pid>`` twice a second (and once more just before
answering ``/metrics`` or ``/health``, and when it stops): its counters and histograms, and its
figures of the moment (memory, CPU, in-flight executions, cache, breakers, pools). The worker that
answers reads every file and adds them up:

- counts (requests, errors by code, latency buckets, custom counters and timers) of every worker
  that ever wrote, so a restarted worker's requests still count and totals never go down;
- figures (memory, in-flight, cache, pools, custom gauges) of the workers still alive only,
  numbers summed, limits and settings reported once, hit rates recomputed, the worst state
  (``open`` over ``half_open`` over ``closed``) shown;
- the per-second rings merged second by second, so the request rate is the instance's.

Writes are atomic (a temporary file renamed over the old), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ai_spine_tools.observability._metrics import MetricsState, ToolMetrics
from ai_spine_tools.observability._periodic import Periodic

__all__ = ["METRICS_DIR_VARIABLE", "InstanceMetrics", "WorkerState", "merge_figures"]

logger = logging.getLogger("ai_spine_tools.metrics")

METRICS_DIR_VARIABLE = "AI_SPINE_METRICS_DIR"
FLUSH_INTERVAL_S = 0.5
_PREFIX = "worker-"
_SEVERITY = {"closed": 0, "up": 0, "ok": 0, "half_open": 1, "degraded": 1, "open": 2, "down": 2}
# Settings and limits: the same in every worker, so reported once rather than summed.
_ONCE = frozenset(
    {
        "failure_threshold",
        "recovery_timeout_s",
        "max_keys",
        "max_connections",
        "cpu_cores",
        "ttl_seconds",
        "limit",
        "queue_size",
        "min_size",
        "max_size",
        "api_keys_active",
        "signing_secrets_active",
        "retry_after_ms",
        "avg",
        "max",
        "current",  # event-loop lag: the worst worker's, not a sum
        "threshold_ms",
    }
)


class WorkerState(msgspec.Struct):
    """What one worker writes: its pid, when, its counters and its figures of the moment."""

    pid: int
    written_at: float
    metrics: MetricsState
    figures: dict[str, Any]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WorkerState)


class InstanceMetrics:
    """This worker's side of the shared directory: write its own state, add up everyone's."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        metrics: ToolMetrics,
        figures: Callable[[], dict[str, Any]],
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self._figures = figures
        self._clock = clock
        self.pid = os.getpid()
        self._path = self.directory / f"{_PREFIX}{self.pid}"
        self._writer = Periodic(
            self.flush,
            FLUSH_INTERVAL_S,
            logger=logger,
            failure="cannot share this worker's metrics; will keep trying",
        )

    @classmethod
    def from_env(
        cls, metrics: ToolMetrics, figures: Callable[[], dict[str, Any]], *, part: str
    ) -> InstanceMetrics | None:
        """The instance's directory named by ``AI_SPINE_METRICS_DIR`` (its folder ``part``, one
        per tool: the tools of a suite share a worker), or ``None`` (one worker)."""
        directory = os.environ.get(METRICS_DIR_VARIABLE)
        if not directory:
            return None
        own = Path(directory) / part
        own.mkdir(exist_ok=True)
        return cls(own, metrics, figures)

    def flush(self) -> None:
        """Write this worker's state (atomically)."""
        state = WorkerState(
            pid=self.pid,
            written_at=time.time(),
            metrics=self.metrics.state(),
            figures=self._figures(),
        )
        temporary = self._path.with_name(self._path.name + ".tmp")
        try:
            temporary.write_bytes(_encoder.encode(state))
            os.replace(temporary, self._path)
        except OSError as exc:  # the directory went away (shutting down): nothing to report to
            logger.debug("cannot write worker metrics to %s: %s", self._path, exc)

    def states(self) -> list[WorkerState]:
        """Every worker's last written state (this one's written now)."""
        self.flush()
        out = []
        with contextlib.suppress(OSError):
            for path in self.directory.iterdir():
                if not path.name.startswith(_PREFIX) or path.name.endswith(".tmp"):
                    continue
                try:
                    out.append(_decoder.decode(path.read_bytes()))
                except (OSError, msgspec.DecodeError):
                    continue  # removed meanwhile, or written by another version
        return out

    def collect(self) -> tuple[ToolMetrics, dict[str, Any], int]:
        """Return the instance's metrics, its figures and how many workers are alive."""
        states = self.states()
        live = [state for state in states if state.pid == self.pid or _alive(state.pid)]
        alive = {state.pid for state in live}
        merged = ToolMetrics.merged(
            ((state.metrics, state.pid in alive) for state in states), clock=self._clock
        )
        figures: dict[str, Any] = {}
        for state in live:
            figures = merge_figures(figures, state.figures)
        return merged, figures, max(1, len(live))

    def start(self) -> None:
        """Start writing in the background, every ``FLUSH_INTERVAL_S`` (a failing write is
        logged once and tried again: the worker's counts must not stop being shared)."""
        self._writer.start()

    async def stop(self) -> None:
        """Stop writing, after one last write so this worker's counts outlive it."""
        await self._writer.stop()
        self.flush()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_figures(a: Any, b: Any, key: str = "") -> Any:
    """Add up two workers' figures: numbers summed (limits and settings kept once), dicts key by
    key, ``hit_rate`` recomputed from hits and misses, the more severe ``state``, any ``True``."""
    if a is None or a == {}:
        return b
    if b is None or b == {}:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = {name: merge_figures(a.get(name), b.get(name), name) for name in {**a, **b}}
        if "hit_rate" in out and isinstance(out.get("hits"), int | float):
            lookups = out["hits"] + out.get("misses", 0)
            out["hit_rate"] = round(out["hits"] / lookups, 4) if lookups else 0.0
        return out
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) or bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        if key in _ONCE:
            return max(a, b)
        return round(a + b, 6) if isinstance(a, float) or isinstance(b, float) else a + b
    if isinstance(a, str) and isinstance(b, str) and key == "state":
        return a if _SEVERITY.get(a, 1) >= _SEVERITY.get(b, 1) else b
    return a
