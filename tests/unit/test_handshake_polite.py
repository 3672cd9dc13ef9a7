"""Politeness: single flight, per-address and global limits, pacing, retry, exclusion,
special-purpose addresses."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pytest

from scanner.handshake.contact import ContactPolicy
from scanner.handshake.exclude import parse_exclusions
from scanner.handshake.handshaker import Handshaker, HandshakerStats, Session
from scanner.handshake.polite import (
    PoliteSettings,
    Retry,
    greylist_window,
    is_transient,
    retry_plan,
)
from scanner.handshake.session import SessionResult, SessionSettings, client_context
from scanner.handshake.smtp import Reply, Transcript
from scanner.status import SmtpStatus
from tests.settings import polite_settings, session_settings

T = TypeVar("T")

SETTINGS = session_settings(read_timeout=1.0, quit_timeout=0.2)
CONTEXT = client_context()
SNI = "mx.example.org"
# The tests' servers sit on documentation and loopback addresses, which a
# Handshaker contacts only when allowed (scanner.handshake.contact).
TEST_NETS = ContactPolicy.build(
    allow=("192.0.2.0/24", "198.51.100.0/24", "127.0.0.0/8", "2001:db8::/32")
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def result(
    status: SmtpStatus = SmtpStatus.TLS_OK,
    *,
    banner: int = 220,
    ehlo: int | None = 250,
    starttls: int | None = 220,
    address: str = "192.0.2.1",
    sni: str = SNI,
) -> SessionResult:
    def reply(code: int | None) -> Reply | None:
        return None if code is None else Reply(code, ("text",))

    transcript = Transcript(banner=reply(banner), ehlo=reply(ehlo), starttls=reply(starttls))
    return SessionResult(address=address, port=25, sni=sni, status=status, transcript=transcript)


@dataclass
class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class FakeSession:
    """Stands in for run_session: answers from a script, records each call."""

    time: FakeTime
    answers: list[SessionResult] = field(default_factory=list)
    calls: list[tuple[str, str, float]] = field(default_factory=list)
    # While set, sessions wait for it to be released: to observe concurrency.
    gate: asyncio.Event | None = None
    open_now: dict[str, int] = field(default_factory=dict)
    most_open: dict[str, int] = field(default_factory=dict)
    most_open_total: int = 0
    # How long each session takes to send its connect (the event loop busy
    # elsewhere), in order; and when each connect was sent, by address.
    lags: list[float] = field(default_factory=list)
    connects: list[tuple[str, float]] = field(default_factory=list)

    async def __call__(
        self,
        address: str,
        sni: str,
        settings: SessionSettings,
        context: ssl.SSLContext,
        *,
        connecting: Callable[[], None],
    ) -> SessionResult:
        assert (settings, context) == (SETTINGS, CONTEXT)
        self.calls.append((address, sni, self.time.now))
        if self.lags:
            await self.time.sleep(self.lags.pop(0))
        connecting()
        self.connects.append((address, self.time.now))
        self.open_now[address] = self.open_now.get(address, 0) + 1
        self.most_open[address] = max(self.most_open.get(address, 0), self.open_now[address])
        self.most_open_total = max(self.most_open_total, sum(self.open_now.values()))
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.answers:
                return replace(self.answers.pop(0), address=address, sni=sni)
            return result(address=address, sni=sni)
        finally:
            self.open_now[address] -= 1


UNPACED = polite_settings(min_interval=0.0)


async def settle() -> None:
    """Let every runnable task run until it blocks."""
    for _ in range(20):
        await asyncio.sleep(0)


def handshaker(
    polite: PoliteSettings = UNPACED,
    **kwargs: Any,
) -> tuple[Handshaker, FakeSession, FakeTime]:
    time = FakeTime()
    session = FakeSession(time, **kwargs)
    return shaker_for(session, time, polite), session, time


def shaker_for(
    session: Session,
    time: FakeTime,
    polite: PoliteSettings,
    policy: ContactPolicy | None = TEST_NETS,
) -> Handshaker:
    """A Handshaker whose sessions are ``session`` and whose time is
    ``time``'s; ``policy`` None is the default one, the real internet's."""
    return Handshaker(
        SETTINGS,
        polite,
        CONTEXT,
        policy=policy,
        session=session,
        clock=time.clock,
        sleep=time.sleep,
    )


def test_concurrent_requests_share_one_session() -> None:
    async def scenario() -> tuple[list[SessionResult], Handshaker, FakeSession]:
        shaker, session, _ = handshaker()
        results = await asyncio.gather(*(shaker.handshake("192.0.2.1", SNI) for _ in range(10)))
        return results, shaker, session

    results, shaker, session = run(scenario())
    assert len(session.calls) == 1
    assert all(r is results[0] for r in results)
    assert shaker.stats == HandshakerStats(sessions=1, joined=9)


def test_finished_sessions_are_answered_from_the_cache_by_normalised_key() -> None:
    async def scenario() -> tuple[Handshaker, FakeSession]:
        shaker, session, _ = handshaker()
        first = await shaker.handshake("2001:db8::1", "MX.Example.org.")
        assert await shaker.handshake("2001:0db8:0::1", "mx.example.org") is first
        assert first.address == "2001:db8::1"
        return shaker, session

    shaker, session = run(scenario())
    assert len(session.calls) == 1
    assert shaker.stats == HandshakerStats(sessions=1, cache_hits=1)


def test_the_cache_is_bounded() -> None:
    async def scenario() -> FakeSession:
        shaker, session, _ = handshaker(polite_settings(min_interval=0.0, cache_size=2))
        for sni in ("a.example", "b.example", "c.example", "a.example", "c.example"):
            await shaker.handshake("192.0.2.1", sni)
        return session

    session = run(scenario())
    # a was evicted by c; c was still cached.
    assert [sni for _, sni, _ in session.calls] == [
        "a.example",
        "b.example",
        "c.example",
        "a.example",
    ]


def test_connections_to_one_address_are_paced() -> None:
    async def scenario() -> tuple[FakeSession, FakeTime]:
        shaker, session, time = handshaker(polite_settings(min_interval=2.0))
        await asyncio.gather(
            *(shaker.handshake("192.0.2.1", f"mx{i}.example") for i in range(3)),
            shaker.handshake("192.0.2.2", SNI),
        )
        return session, time

    session, _ = run(scenario())
    starts = {(address, sni): start for address, sni, start in session.calls}
    first_address = sorted(t for (a, _), t in starts.items() if a == "192.0.2.1")
    assert first_address == [0.0, 2.0, 4.0]
    # Another address is not held up by the first one's pacing.
    assert starts[("192.0.2.2", SNI)] == 0.0


def test_the_interval_runs_from_when_each_connect_was_sent() -> None:
    """The first connection goes out late (its task waited for the event
    loop), the second on time: the second still waits an interval from the
    first's connect, not from the time the first was due."""

    async def scenario() -> FakeSession:
        shaker, session, _ = handshaker(polite_settings(min_interval=2.0), lags=[0.3, 0.0, 0.0])
        await asyncio.gather(*(shaker.handshake("192.0.2.1", f"mx{i}.example") for i in range(3)))
        return session

    session = run(scenario())
    starts = [at for _, at in session.connects]
    assert starts == pytest.approx([0.3, 2.3, 4.3])


def held_then_released(
    polite: PoliteSettings, requests: list[tuple[str, str]]
) -> tuple[FakeSession, int]:
    """The handshakes ``requests`` (address, SNI), every session held open
    until all that may start have: the session, and how many had started."""

    async def scenario() -> tuple[FakeSession, int]:
        shaker, session, _ = handshaker(polite, gate=asyncio.Event())
        tasks = [asyncio.ensure_future(shaker.handshake(a, sni)) for a, sni in requests]
        await settle()
        started = len(session.calls)
        assert session.gate is not None
        session.gate.set()
        await asyncio.gather(*tasks)
        return session, started

    return run(scenario())


@pytest.mark.parametrize("per_address", [1, 2, 3])
def test_at_most_n_connections_per_address(per_address: int) -> None:
    polite = polite_settings(min_interval=0.0, per_address=per_address)
    session, _ = held_then_released(polite, [("192.0.2.1", f"mx{i}.example") for i in range(6)])
    assert len(session.calls) == 6
    assert session.most_open["192.0.2.1"] == per_address


def test_the_global_cap_holds_across_addresses() -> None:
    polite = polite_settings(min_interval=0.0, max_connections=3)
    session, started = held_then_released(polite, [(f"192.0.2.{i}", SNI) for i in range(1, 11)])
    assert started == 3
    assert len(session.calls) == 10
    assert session.most_open_total == 3


GREYLISTED = replace(
    result(SmtpStatus.BANNER_ERROR, starttls=None),
    transcript=Transcript(
        banner=Reply(220, ("mx ESMTP",)),
        ehlo=Reply(450, ("4.7.1 Greylisted, try again in 42 seconds",)),
    ),
)
BUSY = result(SmtpStatus.BANNER_ERROR, banner=421, ehlo=None, starttls=None)


@pytest.mark.parametrize(
    ("answers", "status", "attempts", "sleeps"),
    [
        ([BUSY, result()], SmtpStatus.TLS_OK, 2, [30.0]),
        ([result(SmtpStatus.BANNER_ERROR, ehlo=450, starttls=None), result()], SmtpStatus.TLS_OK,
         2, [300.0]),  # greylisting that names no window: postgrey's default
        ([GREYLISTED, result()], SmtpStatus.TLS_OK, 2, [43.0]),  # the window it names
        ([result(SmtpStatus.STARTTLS_REFUSED, starttls=454), result()], SmtpStatus.TLS_OK, 2,
         [30.0]),
        ([result(SmtpStatus.TLS_ERROR), result()], SmtpStatus.TLS_OK, 2, [30.0]),
        ([result(SmtpStatus.IO_TIMEOUT), result()], SmtpStatus.IO_TIMEOUT, 1, []),
        # Three attempts at most, the pause growing (and the 421s slowing the address).
        ([BUSY, BUSY, BUSY, result()], SmtpStatus.BANNER_ERROR, 3, [30.0, 90.0]),
        ([result(SmtpStatus.BANNER_ERROR, banner=554, ehlo=None, starttls=None)],
         SmtpStatus.BANNER_ERROR, 1, []),
        ([result(SmtpStatus.STARTTLS_REFUSED, starttls=554)], SmtpStatus.STARTTLS_REFUSED, 1, []),
        ([result(SmtpStatus.NO_STARTTLS, starttls=None)], SmtpStatus.NO_STARTTLS, 1, []),
        ([result(SmtpStatus.CONNECT_REFUSED)], SmtpStatus.CONNECT_REFUSED, 1, []),
    ],
)  # fmt: skip
def test_transient_outcomes_are_tried_again(
    answers: list[SessionResult], status: SmtpStatus, attempts: int, sleeps: list[float]
) -> None:
    async def scenario() -> tuple[SessionResult, Handshaker, FakeSession, FakeTime]:
        shaker, session, time = handshaker(
            polite_settings(min_interval=1.0, retry_backoff=30.0), answers=list(answers)
        )
        return await shaker.handshake("192.0.2.1", SNI), shaker, session, time

    final, shaker, session, time = run(scenario())
    assert (final.status, final.attempts) == (status, attempts)
    assert len(session.calls) == attempts
    assert shaker.stats.retries == attempts - 1
    assert time.sleeps == sleeps


def test_a_421_backs_off_the_whole_address_and_slows_it_down() -> None:
    async def scenario() -> FakeSession:
        shaker, session, _ = handshaker(
            polite_settings(min_interval=1.0, retry_backoff=30.0), answers=[BUSY]
        )
        await shaker.handshake("192.0.2.1", "a.example")
        await shaker.handshake("192.0.2.1", "b.example")
        await shaker.handshake("192.0.2.9", "c.example")
        return session

    calls = run(scenario()).calls
    assert [(sni, start) for _, sni, start in calls] == [
        ("a.example", 0.0),
        ("a.example", 30.0),  # the back-off
        ("b.example", 32.0),  # the interval the 421 doubled
        ("c.example", 32.0),  # another address was never held back (the clock is shared)
    ]


@dataclass
class RateLimitedServer(FakeSession):
    """421 for a connection beyond ``per_minute`` in the last 60 s (Postfix's anvil)."""

    per_minute: int = 30
    starts: list[float] = field(default_factory=list)
    refused: int = 0

    async def __call__(
        self,
        address: str,
        sni: str,
        settings: SessionSettings,
        context: ssl.SSLContext,
        *,
        connecting: Callable[[], None],
    ) -> SessionResult:
        now = self.time.now
        self.starts = [t for t in self.starts if t > now - 60]
        if len(self.starts) >= self.per_minute:
            self.refused += 1
            self.answers = [BUSY]
        else:
            self.starts.append(now)
            self.answers = []
        return await super().__call__(address, sni, settings, context, connecting=connecting)


def test_an_address_that_limits_connections_a_minute_is_met_after_a_few_refusals() -> None:
    async def scenario() -> tuple[RateLimitedServer, list[SessionResult]]:
        time = FakeTime()
        server = RateLimitedServer(time, per_minute=30)
        polite = polite_settings(min_interval=1.0, retry_backoff=5.0, attempts=10)
        shaker = shaker_for(server, time, polite)
        results = [await shaker.handshake("192.0.2.1", f"mx{i}.example") for i in range(300)]
        return server, results

    server, results = run(scenario())
    assert all(r.status is SmtpStatus.TLS_OK for r in results)
    assert server.refused <= 8
    late = [t for _, _, t in server.calls][-100:]
    assert min(b - a for a, b in itertools.pairwise(late)) >= 2.0  # 60 s / 30


def test_an_address_waiting_out_a_window_holds_no_connection_slot() -> None:
    async def scenario() -> tuple[SessionResult, SessionResult, list[float]]:
        time = FakeTime()
        session = FakeSession(time, answers=[GREYLISTED])
        waiting: list[float] = []
        released = asyncio.Event()

        async def sleep(seconds: float) -> None:  # a window that lasts until released
            waiting.append(seconds)
            await released.wait()
            time.now += seconds

        shaker = Handshaker(
            SETTINGS,
            polite_settings(min_interval=0.0, max_connections=1),
            CONTEXT,
            policy=TEST_NETS,
            session=session,
            clock=time.clock,
            sleep=sleep,
        )
        first = asyncio.ensure_future(shaker.handshake("192.0.2.1", "a.example"))
        await settle()
        assert waiting == [43.0]  # greylisted: the address waits out its window
        other = await shaker.handshake("192.0.2.2", "b.example")  # the only slot is free
        released.set()
        return await first, other, waiting

    first, other, waiting = run(scenario())
    assert other.status is SmtpStatus.TLS_OK
    assert (first.status, first.attempts) == (SmtpStatus.TLS_OK, 2)
    assert waiting == [43.0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.1 Greylisted, try again in 300 seconds", 300.0),
        ("Greylisted for 60s", 60.0),
        ("please retry in 5 minutes", 300.0),
        ("4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/example.org.html", None),
    ],
)
def test_greylist_window(text: str, seconds: float | None) -> None:
    assert greylist_window(text) == seconds


def test_retry_plan() -> None:
    polite = polite_settings(retry_backoff=10.0, greylist_wait=300.0, max_wait=1000.0)
    assert retry_plan(BUSY, 1, polite) == Retry(10.0, whole_address=True, slow_down=True)
    assert retry_plan(BUSY, 2, polite) == Retry(30.0, whole_address=True, slow_down=True)
    assert retry_plan(BUSY, 3, polite) is None  # attempts=3 in all
    unnamed = result(SmtpStatus.BANNER_ERROR, ehlo=451, starttls=None)
    assert retry_plan(unnamed, 1, polite) == Retry(300.0, whole_address=True, slow_down=False)
    assert retry_plan(unnamed, 2, polite) == Retry(1000.0, whole_address=True, slow_down=False)
    reset = result(SmtpStatus.TLS_ERROR)
    assert retry_plan(reset, 1, polite) == Retry(10.0, whole_address=False, slow_down=False)
    assert retry_plan(result(SmtpStatus.CONNECT_TIMEOUT), 1, polite) is None
    assert retry_plan(result(), 1, polite) is None


def test_excluded_addresses_and_names_are_blocked_without_a_session() -> None:
    exclusions = parse_exclusions(["192.0.2.0/24", "optout.example"]).exclusions

    async def scenario() -> tuple[list[SessionResult], Handshaker, FakeSession]:
        time = FakeTime()
        session = FakeSession(time)
        # Exclusions win over allowed ranges.
        policy = ContactPolicy(exclusions, TEST_NETS.allowed)
        shaker = shaker_for(session, time, polite_settings(min_interval=0.0), policy)
        results = [
            await shaker.handshake("192.0.2.7", SNI),
            await shaker.handshake("::ffff:192.0.2.7", SNI),
            await shaker.handshake("198.51.100.1", "mx.optout.example"),
            await shaker.handshake("198.51.100.1", SNI, names=("optout.example",)),
            # The same address for a domain that did not opt out is probed.
            await shaker.handshake("198.51.100.1", SNI, names=("other.example",)),
        ]
        return results, shaker, session

    results, shaker, session = run(scenario())
    assert [r.status for r in results] == [SmtpStatus.BLOCKED] * 4 + [SmtpStatus.TLS_OK]
    assert results[0].error == "on the exclusion list"
    assert results[0].connect_ms is None
    assert [call[:2] for call in session.calls] == [("198.51.100.1", SNI)]
    assert shaker.stats == HandshakerStats(sessions=1, blocked=4)


def test_special_purpose_addresses_are_reserved_without_a_session() -> None:
    async def scenario() -> tuple[list[SessionResult], Handshaker, FakeSession]:
        time = FakeTime()
        session = FakeSession(time)
        # The default policy: the real internet's.
        shaker = shaker_for(session, time, polite_settings(min_interval=0.0), policy=None)
        addresses = ("127.0.0.1", "10.1.2.3", "::1", "fe80::1", "::ffff:192.168.0.1", "192.0.3.1")
        results = [await shaker.handshake(a, SNI) for a in addresses]
        return results, shaker, session

    results, shaker, session = run(scenario())
    assert [r.status for r in results] == [SmtpStatus.RESERVED] * 5 + [SmtpStatus.TLS_OK]
    assert "loopback" in results[0].error
    assert "--allow-range" in results[0].error
    assert results[0].connect_ms is None
    assert [call[:2] for call in session.calls] == [("192.0.3.1", SNI)]
    assert shaker.stats == HandshakerStats(sessions=1, blocked=5)


def test_not_an_address_is_skipped() -> None:
    shaker, session, _ = handshaker()
    outcome = run(shaker.handshake("mx.example.org", SNI))
    assert (outcome.status, outcome.error) == (SmtpStatus.SKIPPED, "not an IP address")
    assert session.calls == []


def test_a_cancelled_caller_does_not_cancel_the_shared_session() -> None:
    async def scenario() -> tuple[SessionResult, FakeSession]:
        shaker, session, _ = handshaker(gate=asyncio.Event())
        impatient = asyncio.ensure_future(shaker.handshake("192.0.2.1", SNI))
        patient = asyncio.ensure_future(shaker.handshake("192.0.2.1", SNI))
        await asyncio.sleep(0)
        impatient.cancel()
        await asyncio.sleep(0)
        assert session.gate is not None
        session.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient, session

    outcome, session = run(scenario())
    assert outcome.status is SmtpStatus.TLS_OK
    assert len(session.calls) == 1


def test_aclose_cancels_sessions_in_flight() -> None:
    async def scenario() -> tuple[bool, bool]:
        shaker, session, _ = handshaker(gate=asyncio.Event())
        caller = asyncio.ensure_future(shaker.handshake("192.0.2.1", SNI))
        await settle()
        assert len(session.calls) == 1
        await shaker.aclose()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # Nothing half-done is cached: asking again starts a new session.
        assert session.gate is not None
        session.gate.set()
        again = await shaker.handshake("192.0.2.1", SNI)
        return again.status is SmtpStatus.TLS_OK, len(session.calls) == 2

    assert run(scenario()) == (True, True)


@pytest.mark.parametrize(
    "change",
    [
        {"per_address": 0},
        {"max_connections": 0},
        {"cache_size": 0},
        {"min_interval": -1.0},
        {"retry_backoff": -1.0},
        {"attempts": 0},
        {"max_interval": 0.5},
    ],
)
def test_polite_settings_are_validated(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        polite_settings(**change)


def test_retry_against_a_real_server() -> None:
    """The whole path with run_session: 421 first, then a server without STARTTLS."""

    async def scenario() -> SessionResult:
        connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                if connections == 1:
                    writer.write(b"421 4.7.0 Too busy, come back later\r\n")
                else:
                    writer.write(b"220 mx ESMTP\r\n")
                    await reader.readline()
                    writer.write(b"250 mx\r\n")
                await reader.readline()
                writer.write(b"221 bye\r\n")
                await writer.drain()
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            shaker = Handshaker(
                replace(SETTINGS, port=port),
                polite_settings(min_interval=0.0, retry_backoff=0.0),
                CONTEXT,
                policy=TEST_NETS,
            )
            return await shaker.handshake("127.0.0.1", SNI)

    outcome = run(scenario())
    assert (outcome.status, outcome.attempts) == (SmtpStatus.NO_STARTTLS, 2)
    assert outcome.transcript.banner == Reply(220, ("mx ESMTP",))


@pytest.mark.parametrize(
    ("session", "transient"),
    [
        (result(), False),
        (result(SmtpStatus.TLS_ERROR), True),  # a reset or an alert in the handshake
        (result(SmtpStatus.BANNER_ERROR, banner=421, ehlo=None, starttls=None), True),
        (result(SmtpStatus.BANNER_ERROR, ehlo=450, starttls=None), True),  # greylisting
        (result(SmtpStatus.BANNER_ERROR, banner=554, ehlo=None, starttls=None), False),
        (result(SmtpStatus.STARTTLS_REFUSED, starttls=454), True),
        (result(SmtpStatus.STARTTLS_REFUSED, starttls=502), False),
        (result(SmtpStatus.IO_TIMEOUT, starttls=None), False),  # a deadline is not retried
        (result(SmtpStatus.CONNECT_REFUSED, banner=0, ehlo=None, starttls=None), False),
    ],
)
def test_transient_sessions_are_those_retry_plan_retries(
    session: SessionResult, transient: bool
) -> None:
    assert is_transient(session) is transient
    plan = retry_plan(session, 1, polite_settings(attempts=2))
    assert (plan is not None) is transient
