"""Flow control with reading in the protocol's hands, and the sweep of read deadlines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ai_spine_tools.server._flow import Flow, Sweeper


class Transport:
    """Records pauses and resumes of reading, and what is written."""

    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing


class Reader:
    """A protocol that allows reading when ``allowed`` and reads on when asked."""

    def __init__(self) -> None:
        self.allowed = True
        self.paused = 0
        self.resumed = 0
        self.flow: Flow | None = None
        self.checked: list[float] = []

    def may_read(self) -> bool:
        return self.allowed

    def resume(self) -> None:
        self.resumed += 1
        assert self.flow is not None
        self.flow.start_reading()

    def reading_paused(self) -> None:
        self.paused += 1

    def check_deadline(self, now: float) -> None:
        self.checked.append(now)


class Loop:
    """Runs what ``call_soon`` was given when the test says the turn is over."""

    def __init__(self) -> None:
        self.ready: list[Any] = []

    def call_soon(self, callback: Any, *args: Any) -> None:
        self.ready.append((callback, args))

    def end_turn(self) -> None:
        ready, self.ready = self.ready, []
        for callback, args in ready:
            callback(*args)


def flow(loop: Loop | None = None) -> tuple[Flow, Transport, Reader]:
    transport, reader = Transport(), Reader()
    reader.flow = Flow(transport, reader, loop or Loop())  # type: ignore[arg-type]
    return reader.flow, transport, reader


def test_answers_of_one_turn_go_out_together_at_its_end() -> None:
    loop = Loop()
    control, transport, _ = flow(loop)
    control.send_soon(b"one")
    control.send_soon(b"two")
    assert transport.written == []
    loop.end_turn()
    assert transport.written == [b"onetwo"]
    loop.end_turn()
    assert transport.written == [b"onetwo"]  # nothing twice


def test_what_waits_goes_out_before_anything_written_directly() -> None:
    loop = Loop()
    control, transport, _ = flow(loop)
    control.send_soon(b"answer")
    control.send_unsent()  # a refusal or a close is about to follow
    transport.write(b"refusal")
    loop.end_turn()
    assert transport.written == [b"answer", b"refusal"]


def test_nothing_is_written_to_a_closing_or_lost_connection() -> None:
    loop = Loop()
    control, transport, _ = flow(loop)
    control.send_soon(b"late")
    transport.closing = True
    loop.end_turn()
    control.send_soon(b"later")
    control.drop_unsent()
    transport.closing = False
    loop.end_turn()
    assert transport.written == []


def test_a_pause_stops_the_transport_once() -> None:
    control, transport, reader = flow()
    control.pause_reading()
    control.pause_reading()
    assert (control.read_paused, control.wanted, transport.reading) == (True, False, False)
    assert reader.paused == 1


def test_a_resume_reads_on_when_the_protocol_allows() -> None:
    control, transport, reader = flow()
    control.pause_reading()
    control.resume_reading()
    assert (control.read_paused, control.wanted, transport.reading) == (False, True, True)
    assert reader.resumed == 1


def test_a_resume_the_protocol_does_not_allow_is_remembered_as_wanted() -> None:
    control, transport, reader = flow()
    control.pause_reading()
    reader.allowed = False
    control.resume_reading()
    assert (control.read_paused, control.wanted, transport.reading) == (True, True, False)
    assert reader.resumed == 0


def test_a_closing_transport_is_left_alone() -> None:
    control, transport, _ = flow()
    transport.closing = True
    control.pause_reading()
    assert transport.reading  # not touched
    control.start_reading()
    assert not control.read_paused


async def test_drain_waits_until_writing_resumes() -> None:
    control, _, _ = flow()
    control.pause_writing()
    waiter = asyncio.ensure_future(control.drain())
    await asyncio.sleep(0)
    assert not waiter.done()
    control.resume_writing()
    await asyncio.wait_for(waiter, 1)
    assert not control.write_paused


@pytest.mark.parametrize("connections", [[], [object()]], ids=["none", "one without deadlines"])
async def test_one_sweeper_a_server_checks_every_connection(connections: list[Any]) -> None:
    class State:
        pass

    state = State()
    reader = Reader()
    state.connections = {reader, *connections}  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    Sweeper.ensure(state, loop)
    first = state._ai_spine_sweeper  # type: ignore[attr-defined]
    Sweeper.ensure(state, loop)
    assert state._ai_spine_sweeper is first  # type: ignore[attr-defined]
    first.sweep()
    assert len(reader.checked) == 1
