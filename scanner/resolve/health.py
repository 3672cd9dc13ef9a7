"""Whether the scan's resolver is working: an outage of the resolver told
apart from the failures of the domains it is asked about (pure; time passed in).

A dead or lame zone makes its own questions time out or fail (SERVFAIL
without a validation EDE, RFC 8914 section 4) while the others are answered;
a resolver that stopped, was restarted or lost its upstream makes every
question fail. Counts of both kinds arrive every tick from the DNS client.
A tick with failures and no answer at all, or with mostly failures, is a
suspicion, and a probe decides it: the scan's secure probe name answered
with AD means the resolver works and the failures are the domains' own; a
probe that times out or fails means an outage. During an outage the scan
admits nothing and probes on; the first probe that is answered ends it.

An outage is taken to have begun at the last tick that saw an answer, since
the questions that failed before it was noticed failed because of it. A
lookup whose time overlaps an outage (``overlaps``) is redone and its
attempt not counted: the resolver's failure is no fact about the domain.
An outage longer than ``patience`` means the resolver is lost and the scan
ends as failed (``lost``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from scanner.lost import ScanLost


class ResolverLost(ScanLost):
    """The resolver stayed down longer than the scan's patience; a one-line message."""


class Health(StrEnum):
    UP = "up"
    SUSPECT = "suspect"  # a probe is deciding
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """Seconds, and the share of failures that makes a tick suspicious."""

    # An outage longer than this: the resolver is lost (the scan's
    # --resolver-patience, ScanConfig.resolver_patience).
    patience: float
    # Probes while the resolver is up are at least this far apart: a dead
    # zone that keeps failing at a low rate costs one question per interval.
    probe_interval: float = 2.0
    # During an outage: how often the resolver is asked whether it is back.
    down_probe_interval: float = 1.0
    # A tick with answers is still suspicious when this share of what
    # happened failed (a resolver answering SERVFAIL to nearly everything).
    failure_share: float = 0.9
    min_failures: int = 20  # ...and at least this many failed

    def __post_init__(self) -> None:
        if min(self.probe_interval, self.down_probe_interval, self.patience) <= 0:
            raise ValueError("intervals and patience must be positive")
        if not 0 < self.failure_share <= 1:
            raise ValueError("failure_share must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Outage:
    began: float  # the last tick that saw an answer before it
    ended: float | None  # the probe that was answered again; None while it lasts

    def overlaps(self, start: float, end: float) -> bool:
        return start <= (self.ended if self.ended is not None else end) and end >= self.began


class ResolverHealth:
    """The state of one scan's resolver(s), fed ticks and probe results."""

    def __init__(self, settings: HealthSettings, now: float) -> None:
        self.settings = settings
        self.state = Health.UP
        self._last_answer = now  # the last tick with an answer
        self._last_probe = float("-inf")
        self._probing = False
        self._outages: deque[Outage] = deque(maxlen=64)
        self.evaluated = now  # everything that happened until then is judged
        self.outages = 0  # how many began

    @property
    def current(self) -> Outage | None:
        if self._outages and self._outages[-1].ended is None:
            return self._outages[-1]
        return None

    def tick(self, answered: int, failed: int, now: float) -> bool:
        """What the client saw since the last tick; whether to probe now."""
        if answered:
            self._last_answer = now
        if self._probing:
            return False  # the probe under way will judge this tick too
        if self.state is Health.DOWN:
            return self._probe_due(now, self.settings.down_probe_interval)
        total = answered + failed
        settings = self.settings
        mostly_failed = failed >= settings.min_failures and failed >= settings.failure_share * total
        suspicious = failed > 0 and (answered == 0 or mostly_failed)
        if suspicious and self._probe_due(now, self.settings.probe_interval):
            self.state = Health.SUSPECT
            return True
        if not suspicious:
            self.evaluated = now
        return False

    def _probe_due(self, now: float, interval: float) -> bool:
        if now - self._last_probe < interval:
            return False
        self._last_probe = now
        self._probing = True
        return True

    def probed(self, working: bool, now: float) -> None:
        """The result of the probe ``tick`` asked for."""
        self._probing = False
        if working:
            if self.state is Health.DOWN:
                began = self._outages[-1].began
                self._outages[-1] = Outage(began, now)
            self.state = Health.UP
            self.evaluated = now
            return
        if self.state is not Health.DOWN:
            self.outages += 1
            self._outages.append(Outage(self._last_answer, None))
        self.state = Health.DOWN
        self.evaluated = now

    def overlaps(self, start: float, end: float) -> bool:
        """Whether an outage overlapped the time from ``start`` to ``end``."""
        return any(outage.overlaps(start, end) for outage in self._outages)

    def lost(self, now: float) -> bool:
        outage = self.current
        return outage is not None and now - outage.began > self.settings.patience
