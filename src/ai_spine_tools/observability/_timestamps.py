"""Timestamps as every answer and log line writes them: ISO-8601 UTC, milliseconds, ``Z``
(``2026-11-29T08:21:32.220Z``)."""

from __future__ import annotations

import time

__all__ = ["iso_timestamp", "now_iso"]

# The date-and-seconds part is formatted once per second: strftime per call cost 1 µs. One tuple,
# so that a thread logging meanwhile never pairs one second with another's text.
_cached: tuple[int, str] = (-1, "")


def iso_timestamp(seconds: float) -> str:
    """Return ``seconds`` since the epoch as ISO-8601 UTC with milliseconds and ``Z``."""
    global _cached
    whole = int(seconds)
    second, prefix = _cached
    if whole != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _cached = (whole, prefix)
    return f"{prefix}.{int((seconds - whole) * 1000):03d}Z"


def now_iso() -> str:
    """Return the current time as ``iso_timestamp`` writes it (its body inlined: one call less
    on every answer)."""
    global _cached
    now = time.time()
    whole = int(now)
    second, prefix = _cached
    if whole != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _cached = (whole, prefix)
    return f"{prefix}.{int((now - whole) * 1000):03d}Z"
