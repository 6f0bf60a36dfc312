"""The ``cpu`` workload's work: a chain of sha256 digests, pure CPU, the same in every app.

It lives in an importable module of its own so that process pools can pickle it by name.
"""

from __future__ import annotations

import hashlib
import time


def chain(seed: str, rounds: int) -> str:
    """Hash ``seed`` ``rounds`` times over, each digest feeding the next; return the last one."""
    digest = seed.encode()
    sha256 = hashlib.sha256
    for _ in range(rounds):
        digest = sha256(digest).digest()
    return digest.hex()


def rounds_for(seconds: float) -> int:
    """Return how many rounds of ``chain`` take about ``seconds`` on this machine, now."""
    sample = 20_000
    best = min(_timed(sample) for _ in range(3))  # the least disturbed of three
    return max(1, round(sample * seconds / best))


def _timed(rounds: int) -> float:
    started = time.perf_counter()
    chain("calibration", rounds)
    return time.perf_counter() - started
