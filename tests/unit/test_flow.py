"""The flow controller against a simulated resolver: latency, a queue that
builds when the load exceeds its capacity, and drops when the queue is full.
Time is simulated in steps, randomness seeded: every run is the same."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

import pytest

from scanner.flow import Flow, FlowController, FlowSettings, Limit

STEP = 0.005
INTERVAL = 0.5
TIMEOUT = 2.0  # the client's wait per attempt
ATTEMPTS = 3


@dataclass
class Resolver:
    """Serves ``capacity`` queries a second in arrival order; a query it
    serves waits in its queue, then ``latency`` (a lognormal draw: the
    authoritative round trips) unless it is one of the ``hits`` share of
    cache hits. Beyond ``queue_limit`` waiting queries it drops new ones."""

    capacity: float
    latency: float
    hits: float = 0.3
    queue_limit: int = 2000
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    queue: deque[tuple[float, int]] = field(default_factory=deque)
    credit: float = 0.0

    def offer(self, now: float, query: int) -> bool:
        if len(self.queue) >= self.queue_limit:
            return False
        self.queue.append((now, query))
        return True

    def serve(self, now: float) -> list[tuple[float, float, int]]:
        """(finish time, latency, query) of the queries served in this step."""
        self.credit = min(self.credit + self.capacity * STEP, self.capacity * STEP + 1)
        served = []
        while self.queue and self.credit >= 1:
            self.credit -= 1
            arrived, query = self.queue.popleft()
            base = 0.0005 if self.rng.random() < self.hits else self.latency
            base *= math.exp(0.4 * self.rng.gauss(0, 1))
            finish = now + base
            served.append((finish, finish - arrived, query))
        return served


@dataclass
class Outcome:
    done: int
    failed: int
    flows: list[Flow]
    seconds: float
    most_in_flight: int

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def simulate(
    settings: FlowSettings, resolver: Resolver, *, seconds: float = 20.0, queries: int = 3
) -> Outcome:
    """Domains of ``queries`` sequential queries each, admitted at the
    settings' rate within the controller's window; the rate is counted over
    the last half of the run (after the controller has settled)."""
    controller = FlowController(settings)
    events: list[tuple[float, int, str, int]] = []  # (time, seq, kind, query id)
    seq = 0
    domain_of: dict[
        int, tuple[int, int, int, float]
    ] = {}  # query -> domain, step, attempt, started
    in_flight = 0
    tokens = 0.0
    done = failed = 0
    flows = []
    most = 0
    next_query = 0
    next_domain = 0
    now = 0.0
    next_update = INTERVAL

    def send(now: float, domain: int, step: int, attempt: int, started: float) -> None:
        nonlocal next_query, seq
        query = next_query
        next_query += 1
        domain_of[query] = (domain, step, attempt, started)
        sent[query] = now
        resolver.offer(now, query)  # a dropped query simply never answers
        heapq.heappush(events, (now + TIMEOUT, seq, "timeout", query))
        seq += 1

    sent: dict[int, float] = {}
    while now < seconds:
        tokens = min(tokens + settings.rate * STEP, settings.rate * 0.1 + 1)
        while tokens >= 1 and in_flight < controller.flow.domains:
            tokens -= 1
            in_flight += 1
            send(now, next_domain, 0, 1, now)
            next_domain += 1
        most = max(most, in_flight)
        for finish, _latency, query in resolver.serve(now):
            heapq.heappush(events, (finish, seq, "answer", query))
            seq += 1
        while events and events[0][0] <= now:
            _, _, kind, query = heapq.heappop(events)
            if query not in domain_of:
                continue  # answered already, or timed out already
            domain, step, attempt, started = domain_of.pop(query)
            latency = now - sent.pop(query)
            controller.query_done(latency, timed_out=kind == "timeout")
            if kind == "timeout" and attempt < ATTEMPTS:
                send(now, domain, step, attempt + 1, started)
            elif kind == "timeout" or step + 1 == queries:
                in_flight -= 1
                controller.domain_done(now - started)
                if now >= seconds / 2:
                    done += kind == "answer"
                    failed += kind == "timeout"
            else:
                send(now, domain, step + 1, 1, started)
        if now >= next_update:
            flows.append(controller.update(in_flight=in_flight))
            next_update += INTERVAL
        now += STEP
    return Outcome(done, failed, flows, seconds / 2, most)


def test_the_window_follows_latency_to_reach_the_rate() -> None:
    settings = FlowSettings(rate=2000)
    outcome = simulate(settings, Resolver(capacity=1e6, latency=0.2))
    assert outcome.rate >= 0.95 * 2000
    assert outcome.failed == 0
    last = outcome.flows[-1]
    # Little's law: three queries of ~0.14 s on average, at 2,000 a second.
    expected = 2000 * last.resolve_mean * settings.headroom
    assert last.domains == pytest.approx(expected, rel=0.05)
    assert 600 < last.domains < 1600
    assert last.limit is Limit.RATE
    assert not any(flow.congested for flow in outcome.flows)


def test_a_slower_internet_gets_a_larger_window() -> None:
    fast = simulate(FlowSettings(rate=1000), Resolver(capacity=1e6, latency=0.05))
    slow = simulate(FlowSettings(rate=1000), Resolver(capacity=1e6, latency=0.4))
    assert slow.flows[-1].domains > 4 * fast.flows[-1].domains
    assert slow.rate >= 0.95 * 1000
    assert fast.rate >= 0.95 * 1000


def test_a_congested_resolver_is_backed_off_and_nothing_fails() -> None:
    # 2,400 queries a second is 800 domains a second; 4,000 are asked for.
    resolver = Resolver(capacity=2400, latency=0.05, queue_limit=1000)
    outcome = simulate(FlowSettings(rate=4000), resolver)
    assert outcome.failed <= 0.005 * outcome.done
    assert outcome.rate >= 0.8 * 800
    assert any(flow.congested for flow in outcome.flows)
    assert outcome.flows[-1].limit is Limit.RESOLVER


def test_without_the_ceiling_the_same_resolver_drops_queries() -> None:
    """The control for the test above: Little's law alone overloads it."""
    resolver = Resolver(capacity=2400, latency=0.05, queue_limit=1000)
    blind = FlowSettings(rate=4000, timeout_share=1.0, latency_factor=1e9)
    outcome = simulate(blind, resolver)
    assert outcome.failed > 0.05 * (outcome.done + outcome.failed)


def test_the_memory_cap_bounds_the_window() -> None:
    settings = FlowSettings(rate=5000, max_domains=400)
    outcome = simulate(settings, Resolver(capacity=1e6, latency=0.3))
    assert outcome.most_in_flight <= 400
    assert outcome.flows[-1].domains == 400
    assert outcome.flows[-1].limit is Limit.MEMORY


def test_queries_follow_domains_within_their_bounds() -> None:
    small = FlowController(FlowSettings(rate=10, min_domains=50))
    assert small.flow.domains == 50
    assert small.flow.queries == 150  # three per domain
    floor = FlowController(FlowSettings(rate=10, min_domains=10, min_queries=100))
    assert floor.flow.queries == 100
    big = FlowController(FlowSettings(rate=100_000, max_queries=500))
    assert big.flow.queries == 500


def test_a_drained_input_is_what_limits() -> None:
    controller = FlowController(FlowSettings(rate=100))
    assert controller.update(in_flight=0, admitting=False).limit is Limit.INPUT


@pytest.mark.parametrize(
    "overrides",
    [{"rate": 0}, {"min_domains": 0}, {"min_domains": 10, "max_domains": 5}, {"decrease": 1.0}],
)
def test_settings_are_validated(overrides: dict[str, float]) -> None:
    values: dict[str, float] = {"rate": 100.0}
    values.update(overrides)
    with pytest.raises(ValueError, match=r"need|rate"):
        FlowSettings(**values)  # type: ignore[arg-type]
