"""StartPacer: connection starts to one address an interval apart, measured
from when each connection really began."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from scanner.handshake.pacing import StartPacer

A, B = "192.0.2.1", "192.0.2.2"


@dataclass
class Clock:
    """Moves only when someone sleeps on it."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(size: int = 16) -> tuple[StartPacer, Clock]:
    clock = Clock()
    return StartPacer(size, clock, clock.sleep), clock


def test_waiting_connections_are_queued_an_interval_apart() -> None:
    pace, _ = pacer()
    assert [pace.reserve(A, 2.0) for _ in range(3)] == [0.0, 2.0, 4.0]
    assert pace.reserve(B, 2.0) == 0.0  # another address has its own queue


def test_a_claim_records_the_start_so_no_second_claim_passes_with_it() -> None:
    pace, clock = pacer()
    assert pace.claim(A, 1.0) == 0.0
    assert pace.claim(A, 1.0) == 1.0
    clock.now = 0.4
    assert pace.claim(A, 1.0) == pytest.approx(0.6)
    clock.now = 1.0
    assert pace.claim(A, 1.0) == 0.0


def test_the_interval_runs_from_when_the_connect_was_sent() -> None:
    """A connection claimed on time and sent late (the event loop busy
    elsewhere): the next one, queued for the claim's time plus the interval,
    still waits for the late start's."""
    pace, clock = pacer()
    assert [pace.reserve(A, 1.0) for _ in range(2)] == [0.0, 1.0]
    assert pace.claim(A, 1.0) == 0.0
    clock.now = 0.3
    pace.began(A, 1.0)  # sent 0.3 s after its claim
    clock.now = 1.0  # the second's turn in the queue
    assert pace.claim(A, 1.0) == pytest.approx(0.3)
    clock.now = 1.3
    assert pace.claim(A, 1.0) == 0.0


def test_the_queue_waits_behind_a_late_start() -> None:
    pace, clock = pacer()
    pace.began(A, 1.0)
    clock.now = 0.5
    assert pace.reserve(A, 1.0) == pytest.approx(0.5)
    assert pace.reserve(A, 1.0) == pytest.approx(1.5)


def test_a_hold_closes_the_address_and_never_shortens_a_wait() -> None:
    pace, clock = pacer()
    pace.hold(A, 30.0)
    pace.hold(A, 5.0)
    assert pace.claim(A, 1.0) == 30.0
    assert pace.reserve(A, 1.0) == 30.0
    clock.now = 30.0
    assert pace.claim(A, 1.0) == 0.0


def test_the_tables_are_bounded() -> None:
    pace, _ = pacer(size=2)
    for address in (A, B, "192.0.2.3"):
        pace.began(address, 10.0)
    assert pace.claim(A, 10.0) == 0.0  # evicted: the oldest entry goes first
    assert pace.claim("192.0.2.3", 10.0) == 10.0


def test_turn_and_due_sleep_the_waits_they_are_told() -> None:
    """``turn`` waits behind a late start, ``due`` behind the last claim."""

    async def scenario() -> Clock:
        pace, clock = pacer()
        await pace.turn(A, 1.0)
        await pace.due(A, 1.0)
        clock.now = 0.3
        pace.began(A, 1.0)
        await pace.turn(A, 1.0)  # queued for 1.0, the late start says 1.3
        await pace.due(A, 1.0)  # due at once, and claimed
        await pace.due(A, 1.0)  # the claim's interval
        return clock

    clock = asyncio.run(scenario())
    assert clock.slept == pytest.approx([1.0, 1.0])
    assert clock.now == pytest.approx(2.3)


def test_size_must_be_positive() -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="at least 1"):
        StartPacer(0, clock, clock.sleep)
