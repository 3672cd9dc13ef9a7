"""The DNS client's timing against fake resolvers: retries after a silent
attempt, late and duplicate answers, query IDs, the in-flight bound and its
changes, latencies, cancellation while waiting for a slot.
"""

from __future__ import annotations

import asyncio
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from scanner.resolve.message import RdType
from scanner.status import DnsOutcome
from tests.unit.fake_resolver import (
    Replies,
    Run,
    ScriptedIds,
    client_for,
    loop_runner,
    mx_answer,
)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Each test on both event loops the scanner may run on."""
    return loop_runner(request.param)


# --- timing: retries, late and duplicate answers -----------------------------------


def test_silent_resolver_times_out_each_attempt_after_its_wait(run: Run) -> None:
    arrivals: list[float] = []

    def silent(query: dns.message.Message, nth: int) -> Replies:
        arrivals.append(time.monotonic())
        return []

    async def main() -> None:
        # Waits of 0.1, 0.2 and 0.4 s; the sweep runs every 0.005 s.
        async with client_for(silent, timeout=0.1, backoff=2.0) as (client, _):
            started = time.monotonic()
            answer = await client.query("a.example", RdType.MX)
            ended = time.monotonic()
            assert client.pending == 0
            stats = client.stats
        assert (answer.outcome, answer.attempts, stats.timeouts) == (DnsOutcome.TIMEOUT, 3, 3)
        assert "no answer after 3 attempts (3 timed out)" in answer.error
        gaps = [b - a for a, b in zip([started, *arrivals], [*arrivals, ended], strict=True)]
        # Never early (the loop clock has 1 ms steps); late by a tick and the
        # loop's own latency at most (generous: the machine is shared).
        for gap, wait in zip(gaps[1:], [0.1, 0.2, 0.4], strict=True):
            assert wait - 0.002 <= gap < wait + 0.08

    run(main())


def test_late_answer_to_the_first_attempt_completes_the_query(run: Run) -> None:
    def first_only_and_slowly(query: dns.message.Message, nth: int) -> Replies:
        return [(mx_answer(query), 0.25)] if nth == 1 else []

    async def main() -> None:
        async with client_for(first_only_and_slowly) as (client, fake):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
        assert (answer.outcome, answer.attempts) == (DnsOutcome.ANSWER, 2)
        assert len(fake.queries) == 2

    run(main())


def test_late_duplicate_after_retry_never_completes_a_newer_query(run: Run) -> None:
    # a.example: attempt 1 (ID 7) is answered late, after attempt 2 (ID 8)
    # has been answered. b.example then reuses ID 7 and is still waiting when
    # the late answer for a.example arrives: that answer must be ignored.
    def handler(query: dns.message.Message, nth: int) -> Replies:
        delay = {1: 0.65, 2: 0.0}.get(nth, 0.3)
        return [(mx_answer(query), delay)]

    async def main() -> None:
        ids = ScriptedIds([7, 8, 7])
        async with client_for(handler, rng=ids, timeout=0.5, sockets=1) as (client, fake):
            first = await client.query("a.example", RdType.MX)
            second = await client.query("b.example", RdType.MX)
            await asyncio.sleep(0.4)  # anything late has arrived by now
            assert client.pending == 0
            stats = client.stats
        assert [q.id for q in fake.queries] == [7, 8, 7]
        assert (first.outcome, first.attempts) == (DnsOutcome.ANSWER, 2)
        assert (second.outcome, second.attempts) == (DnsOutcome.ANSWER, 1)
        assert second.qname == "b.example."
        assert (stats.accepted, stats.ignored) == (2, 1)

    run(main())


def test_two_queries_in_flight_never_share_an_id(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        ids = ScriptedIds([7, 7, 9])
        async with client_for(slow, rng=ids, sockets=1) as (client, fake):
            answers = await asyncio.gather(
                client.query("a.example", RdType.MX), client.query("b.example", RdType.MX)
            )
            assert client.pending == 0
        assert sorted(q.id for q in fake.queries) == [7, 9]
        assert [a.outcome for a in answers] == [DnsOutcome.ANSWER] * 2
        assert [a.qname for a in answers] == ["a.example.", "b.example."]

    run(main())


def test_in_flight_queries_are_bounded(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.02)]  # noqa: E731
        async with client_for(slow, max_in_flight=20, timeout=5.0) as (client, fake):
            answers = await asyncio.gather(
                *(client.query(f"{i}.example", RdType.MX) for i in range(300))
            )
            assert client.pending == 0
        assert {a.outcome for a in answers} == {DnsOutcome.ANSWER}
        assert [a.qname for a in answers] == [f"{i}.example." for i in range(300)]
        assert 1 < fake.most_outstanding <= 20

    run(main())


def test_the_in_flight_limit_can_change_while_queries_wait(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.1)]  # noqa: E731
        async with client_for(slow, max_in_flight=2, timeout=5.0) as (client, fake):
            futures = [client.ask(f"{i}.example", RdType.MX) for i in range(10)]
            assert (client.in_flight, client.waiting) == (2, 8)
            client.set_max_in_flight(6)  # the waiting ones go out at once
            assert (client.in_flight, client.waiting, client.max_in_flight) == (6, 4, 6)
            client.set_max_in_flight(1)  # those sent stay; no new one until below
            assert (client.in_flight, client.waiting) == (6, 4)
            await asyncio.gather(*futures)
            assert (client.in_flight, client.waiting) == (0, 0)
        assert fake.most_outstanding == 6

    run(main())


def test_latencies_are_handed_over_once(run: Run) -> None:
    def handler(query: dns.message.Message, nth: int) -> Replies:
        silent = str(query.question[0].name).startswith("silent")
        return [] if silent else [(mx_answer(query), 0.05)]

    async def main() -> None:
        async with client_for(handler, timeout=0.1, retries=0) as (client, _):
            answers = await asyncio.gather(
                client.query("a.example", RdType.MX),
                client.query("b.example", RdType.MX),
                client.query("silent.example", RdType.MX),
            )
            latencies, retried, gave_up = client.take_latencies()
            assert client.take_latencies() == ([], 0, 0)
        assert [a.outcome for a in answers][-1] is DnsOutcome.TIMEOUT
        assert (gave_up, retried) == (1, 0)
        assert len(latencies) == 2
        assert all(0.04 < latency < 0.5 for latency in latencies)

    run(main())


def test_asked_queries_are_in_flight_together(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        async with client_for(slow) as (client, fake):
            # Both asked before either is awaited: no task, yet concurrent.
            first, second = client.ask("a.example", RdType.MX), client.ask("b.example", RdType.MX)
            assert client.pending == 2
            answers = [await first, await second]
            assert client.pending == 0
        assert [a.qname for a in answers] == ["a.example.", "b.example."]
        assert {a.outcome for a in answers} == {DnsOutcome.ANSWER}
        assert fake.most_outstanding == 2

    run(main())


def test_query_cancelled_while_waiting_for_a_slot_is_never_sent(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        async with client_for(slow, max_in_flight=1) as (client, fake):
            first = client.ask("a.example", RdType.MX)
            second = client.ask("b.example", RdType.MX)
            third = client.ask("c.example", RdType.MX)
            assert client.pending == 1  # the others wait for the one slot
            second.cancel()
            assert (await first).outcome is DnsOutcome.ANSWER
            assert (await third).outcome is DnsOutcome.ANSWER
            assert client.pending == 0
        assert [str(q.question[0].name) for q in fake.queries] == ["a.example.", "c.example."]

    run(main())
