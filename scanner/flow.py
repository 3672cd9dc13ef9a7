"""How many domains and DNS queries a scan keeps in flight (pure; time is
passed in).

The user asks for a rate. Little's law says how many domains must be in
flight to reach it: the rate times the time a domain spends resolving, which
on the real internet is hundreds of milliseconds and varies with every
operator a domain's zones sit at. The controller measures that time and
sizes the window from it, with headroom for its spread. A window that large
may be more than the resolver can take: when its quickest answers (cache
hits, the tenth percentile) slow down well beyond their usual latency, the
resolver is queueing, and when many queries time out, or are answered only
when asked again, it is dropping; either
way it is congested, and a ceiling on the window backs off multiplicatively
and grows back additively, as TCP's congestion window does (RFC 5681 section
3.1), so that a scan never turns its own overload into ``dns_error`` rows.
The slow answers are no such signal: they are the authoritative servers'
round trips, which a larger window is there to wait out. A memory cap
bounds the window whatever the measurements say.

``FlowController.update`` is called every ``interval`` seconds with what was
observed since the last call and returns the ``Flow``: the window for domains
and for DNS queries, and what limits the rate at the moment.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from enum import StrEnum


class Limit(StrEnum):
    """What keeps the scan from going faster right now."""

    RATE = "rate cap"  # admitting at the rate asked for: nothing else limits
    RESOLVER = "resolver"  # the window is held down by a congested resolver
    MEMORY = "memory cap"  # the window is at its memory cap
    POLITENESS = "politeness"  # domains wait for busy mail servers (set by the pipeline)
    CPU = "CPU"  # the process is busy all the time (set by the pipeline)
    INPUT = "input"  # nothing left to admit
    RESOLVER_DOWN = "resolver down"  # an outage: nothing is admitted (set by the pipeline)


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """The controller's constants; the window's caps come from ScanConfig."""

    rate: float  # domains per second this process admits
    min_domains: int = 50
    max_domains: int = 20_000
    # DNS queries in flight per domain in flight: a domain asks MX, then A
    # and AAAA together per host, then TLSA; about two at a time on average.
    queries_per_domain: float = 3.0
    min_queries: int = 100
    max_queries: int = 10_000
    # Little's law gives the mean number in flight; the window needs room for
    # the spread of resolution times around that mean.
    headroom: float = 1.5
    # Congested: the quickest tenth of the answers take this many times
    # their baseline plus a margin, or this share of the queries timed out.
    latency_factor: float = 3.0
    latency_margin: float = 0.02  # seconds
    timeout_share: float = 0.05
    decrease: float = 0.7  # of the window in use, on congestion
    increase: float = 0.1  # of the ceiling per interval, while the ceiling binds
    increase_min: int = 20
    # After a decrease, intervals before the ceiling may grow again.
    hold: int = 2
    # The resolution times Little's law is taken over.
    history: int = 4096

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if not 1 <= self.min_domains <= self.max_domains:
            raise ValueError("need 1 <= min_domains <= max_domains")
        if not 1 <= self.min_queries <= self.max_queries:
            raise ValueError("need 1 <= min_queries <= max_queries")
        if not 0 < self.decrease < 1 or self.increase <= 0 or self.headroom < 1:
            raise ValueError("need 0 < decrease < 1, increase > 0 and headroom >= 1")


@dataclass(frozen=True, slots=True)
class Flow:
    """The decision of one interval."""

    domains: int  # domains that may be resolving at once
    queries: int  # DNS queries that may be outstanding at once
    limit: Limit
    resolve_mean: float  # seconds, the mean resolution time Little's law used
    query_median: float  # seconds, the median query latency of the interval
    query_fast: float  # seconds, the tenth percentile: the resolver's own delay
    congested: bool


class FlowController:
    """Sizes the window from measured latency, backs it off on congestion."""

    def __init__(self, settings: FlowSettings, *, initial_latency: float = 0.2) -> None:
        self.settings = settings
        self._durations: deque[float] = deque(maxlen=settings.history)
        self._latencies: list[float] = []
        self._timeouts = self._retried = 0
        self._baseline: float | None = None
        self._ceiling = float(settings.max_domains)
        self._held = 0
        self._initial = initial_latency
        self._flow = self._decide(congested=False, median=0.0, fast=0.0, input_left=True)

    @property
    def flow(self) -> Flow:
        return self._flow

    def query_done(self, latency: float, *, timed_out: bool, retried: bool = False) -> None:
        """One DNS query answered (or given up on) after ``latency`` seconds;
        ``retried``: answered, but only after an attempt had timed out."""
        if timed_out:
            self._timeouts += 1
        else:
            self._retried += retried
            self._latencies.append(latency)

    def domain_done(self, seconds: float) -> None:
        """One domain resolved in ``seconds``, from admission to its last answer."""
        self._durations.append(seconds)

    def update(self, *, in_flight: int, admitting: bool = True) -> Flow:
        """The window for the next interval, from what was observed in this one.

        ``in_flight``: domains resolving now; ``admitting``: whether the input
        still has domains (a drained input is what limits, then).
        """
        s = self.settings
        latencies = sorted(self._latencies)
        answered = len(latencies)
        median = latencies[answered // 2] if answered else 0.0
        fast = latencies[answered // 10] if answered else 0.0
        total = answered + self._timeouts
        timed_out = self._timeouts + self._retried  # an attempt at least
        congested = False
        if answered >= 20:
            # The baseline follows the lowest values seen, and slowly drifts
            # up to the present, so that a luckier past does not count as
            # the norm for ever.
            if self._baseline is None or fast < self._baseline:
                self._baseline = fast
            else:
                self._baseline += (fast - self._baseline) * 0.01
            congested = fast > self._baseline * s.latency_factor + s.latency_margin
        if total >= 20 and timed_out / total > s.timeout_share:
            congested = True
        if congested:
            self._ceiling = max(float(s.min_domains), min(self._ceiling, in_flight * s.decrease))
            self._held = s.hold
        elif self._held:
            self._held -= 1
        elif in_flight >= 0.9 * self._flow.domains and self._ceiling < s.max_domains:
            grown = self._ceiling + max(s.increase_min, s.increase * self._ceiling)
            self._ceiling = min(float(s.max_domains), grown)
        self._latencies = []
        self._timeouts = self._retried = 0
        self._flow = self._decide(
            congested=congested, median=median, fast=fast, input_left=admitting
        )
        return self._flow

    def _mean_duration(self) -> float:
        return statistics.fmean(self._durations) if self._durations else self._initial

    def _decide(self, *, congested: bool, median: float, fast: float, input_left: bool) -> Flow:
        s = self.settings
        # Little's law: domains in flight to admit ``rate`` per second.
        mean = self._mean_duration()
        target = s.rate * mean * s.headroom
        window = min(target, self._ceiling, float(s.max_domains))
        domains = max(s.min_domains, math.ceil(window))
        if not input_left:
            limit = Limit.INPUT
        elif domains >= s.max_domains and target > s.max_domains:
            limit = Limit.MEMORY
        elif self._ceiling < target:
            limit = Limit.RESOLVER
        else:
            limit = Limit.RATE
        queries = min(s.max_queries, max(s.min_queries, math.ceil(domains * s.queries_per_domain)))
        return Flow(domains, queries, limit, mean, median, fast, congested)
