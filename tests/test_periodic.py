"""``Periodic``: a function called on a schedule, kept going through its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from ai_spine_tools.observability._periodic import Periodic

logger = logging.getLogger("test.periodic")


def counting(fail: bool = False) -> tuple[list[int], asyncio.Event, Callable[[], None]]:
    """A tick that counts its calls (and raises, if ``fail``); the event is set at three."""
    calls: list[int] = []
    thrice = asyncio.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) >= 3:
            thrice.set()
        if fail:
            raise OSError("disk full")

    return calls, thrice, tick


async def test_calls_on_a_schedule_until_stopped() -> None:
    calls, thrice, tick = counting()
    periodic = Periodic(tick, 0.01, logger=logger, failure="tick failed")
    periodic.start()
    periodic.start()  # a second start changes nothing
    await asyncio.wait_for(thrice.wait(), 5)
    await periodic.stop()
    stopped_at = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == stopped_at
    await periodic.stop()  # stopping twice is fine


async def test_a_failing_tick_is_logged_once_and_called_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, thrice, tick = counting(fail=True)
    periodic = Periodic(tick, 0.01, logger=logger, failure="cannot write; will keep trying")
    with caplog.at_level(logging.ERROR, "test.periodic"):
        periodic.start()
        await asyncio.wait_for(thrice.wait(), 5)
        await periodic.stop()
    failures = [r for r in caplog.records if r.getMessage() == "cannot write; will keep trying"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
