"""``Outage`` and ``Throttle``: the bookkeeping of a failing Redis, on an injected clock."""

from __future__ import annotations

from ai_spine_tools.cache._outage import Outage, Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_backs_off_doubling_to_its_cap_and_ends_on_success() -> None:
    clock = Clock()
    outage = Outage(retry_delay=1.0, max_retry_delay=4.0, log_interval=60.0, clock=clock)
    assert outage.may_try()
    assert not outage.ongoing
    assert outage.failed() is True  # the first failure warns
    assert outage.ongoing
    assert not outage.may_try()  # put off by 1 s
    clock.now += 1.0
    assert outage.may_try()  # this caller probes...
    assert not outage.may_try()  # ...and the others wait for it
    assert outage.failed() is False  # within the minute: no second warning
    clock.now += 1.9
    assert not outage.may_try()  # now put off by 2 s
    clock.now += 0.1
    assert outage.may_try()
    outage.failed()
    outage.failed()  # 4 failures: capped at 4 s, not 8
    clock.now += 4.0
    assert outage.may_try()
    assert outage.ended() == 4
    assert not outage.ongoing
    assert outage.may_try()
    assert outage.ended() == 0


def test_a_throttle_says_yes_once_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(60.0, clock)
    assert throttle.due()
    clock.now += 59.9
    assert not throttle.due()
    clock.now += 0.1
    assert throttle.due()
    assert not throttle.due(clock.now + 1.0)
