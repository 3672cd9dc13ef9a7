"""Progress of a long scan: a live rich display on a terminal, a plain periodic
line otherwise (logs, CI, nohup), nothing with --quiet; a summary at the end."""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field, fields
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from scanner.terminal import printable

# Seconds over which the ETA's rate is taken.
_RECENT = 30.0


@dataclass(frozen=True, slots=True)
class Gauges:
    """What is happening right now, as the flow control sees it (scanner.flow)."""

    domains: int = 0  # resolving
    domain_window: int = 0  # may be resolving
    queries: int = 0  # DNS queries outstanding or waiting to go out
    query_window: int = 0  # may be outstanding
    parked: int = 0  # domains waiting for mail servers
    connections: int = 0  # SMTP connections open
    # Seconds, over the most recent domains: admission to the last DNS
    # answer, and the wait for and the sessions with mail servers.
    resolve_p50: float = 0.0
    resolve_p90: float = 0.0
    handshake_p50: float = 0.0
    handshake_p90: float = 0.0
    query_p50: float = 0.0  # one DNS query, answered
    limit: str = ""  # what keeps the rate down at the moment (scanner.flow.Limit)
    retrying: int = 0  # domains waiting to be looked up again (a transient outcome)

    def __add__(self, other: Gauges) -> Gauges:
        """Several workers: counts add up, latencies are the worst of them."""
        return Gauges(
            *(_combine(name, getattr(self, name), getattr(other, name)) for name in _GAUGES)
        )


_GAUGES = tuple(f.name for f in fields(Gauges))


def _combine(name: str, mine: Any, theirs: Any) -> Any:
    if name == "limit":
        return mine or theirs
    if name.endswith(("_p50", "_p90")):
        return max(mine, theirs)
    return mine + theirs


@dataclass(slots=True)
class Counters:
    """What a scan has done so far: the pipeline counts, the display, the
    manifest and the parent of several workers read a ``Snapshot`` of it.
    Every counter is a number or a Counter, so that snapshots of several
    workers add up field by field."""

    read: int = 0
    skipped: int = 0  # duplicates, other shards, already done (resume)
    admitted: int = 0
    resolved: int = 0
    handshaken: int = 0  # domains through the handshake stage (with or without sessions)
    concluded: int = 0
    written: int = 0
    sessions: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    transient: int = 0  # rows written whose outcome is still transient
    retried: int = 0  # lookups redone after a transient outcome (counted or not)
    outages: int = 0  # resolver outages seen
    # What the stages did, by their own counters (scanner.resolve.client's
    # ClientStats, scanner.handshake.handshaker's HandshakerStats,
    # scanner.match.batch's PoolStats, scanner.mtasts.fetch's FetcherStats):
    # the footprint of the scan on the wire, for the manifest.
    dns: Counter[str] = field(default_factory=Counter)
    handshakes: Counter[str] = field(default_factory=Counter)
    matching: Counter[str] = field(default_factory=Counter)
    policy_fetches: Counter[str] = field(default_factory=Counter)

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, n) + getattr(other, n) for n in _COUNTERS))

    def copy(self) -> Counters:
        return self + Counters()


_COUNTERS = tuple(f.name for f in fields(Counters))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The counters at one moment, with the gauges; summed over workers."""

    counts: Counters = field(default_factory=Counters)  # a copy: nobody counts on it
    elapsed: float = 0.0
    total: int | None = None  # lines in the input, when known
    gauges: Gauges = field(default_factory=Gauges)

    def __add__(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            self.counts + other.counts,
            max(self.elapsed, other.elapsed),
            self.total if self.total is not None else other.total,
            self.gauges + other.gauges,
        )

    @property
    def rate(self) -> float:
        return self.counts.concluded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return self.eta_at(self.rate)

    def eta_at(self, rate: float) -> float | None:
        """Seconds left at ``rate`` domains a second (the recent rate says
        more than the average once mail servers set the pace)."""
        if self.total is None or rate <= 0:
            return None
        c = self.counts
        left = max(0, self.total - c.read) + (c.admitted - c.concluded)
        return left / rate


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _cell(text: str) -> str:
    """Text for a rich table: controls escaped (scanner.terminal), and
    brackets too, which rich would read as markup."""
    return escape(printable(text))


def line(s: Snapshot, eta: float | None = None) -> str:
    c = s.counts
    top = ", ".join(f"{printable(k)} {v}" for k, v in c.verdicts.most_common(6))
    g = s.gauges
    return (
        f"scan: {c.concluded} domains done ({s.rate:.0f}/s), {c.written} written, "
        f"{g.domains} resolving, {g.queries} DNS queries, {g.parked} waiting for mail servers, "
        f"{g.retrying} to retry, {c.transient} transient, "
        f"{c.sessions} TLS sessions, resolve p50/p90 {_ms(g.resolve_p50)}/{_ms(g.resolve_p90)}, "
        f"limited by {printable(g.limit) or '-'}, elapsed {_clock(s.elapsed)}, "
        f"ETA {_clock(eta if eta is not None else s.eta)}" + (f"; {top}" if top else "")
    )


def table(s: Snapshot, title: str = "danescan", eta: float | None = None) -> Table:
    c = s.counts
    stages = Table(title=title, show_header=True, header_style="bold")
    stages.add_column("stage")
    stages.add_column("done", justify="right")
    stages.add_column("per second", justify="right")
    for name, value in (
        ("read", c.read),
        ("admitted", c.admitted),
        ("resolved", c.resolved),
        ("handshake stage", c.handshaken),
        ("concluded", c.concluded),
        ("written", c.written),
    ):
        rate = value / s.elapsed if s.elapsed > 0 else 0.0
        stages.add_row(name, f"{value:,}", f"{rate:,.0f}")
    g = s.gauges
    stages.add_row("TLS sessions", f"{c.sessions:,}", "")
    for label, left, right in (
        ("domains resolving / window", g.domains, g.domain_window),
        ("DNS queries / window", g.queries, g.query_window),
        ("waiting for mail servers / connections", g.parked, g.connections),
    ):
        stages.add_row(label, f"{left:,}", f"{right:,}")
    stages.add_row("resolve p50 / p90", _ms(g.resolve_p50), _ms(g.resolve_p90))
    stages.add_row("mail servers p50 / p90", _ms(g.handshake_p50), _ms(g.handshake_p90))
    stages.add_row("DNS query p50", _ms(g.query_p50), "")
    stages.add_row("to retry / retried", f"{g.retrying:,}", f"{c.retried:,}")
    stages.add_row("rows left transient", f"{c.transient:,}", "")
    stages.add_row("resolver outages", f"{c.outages:,}", "")
    stages.add_row("limited by", _cell(g.limit) or "-", "")
    stages.add_row("skipped (dupes, shards, resumed)", f"{c.skipped:,}", "")
    stages.add_row("elapsed / ETA", _clock(s.elapsed), _clock(eta if eta is not None else s.eta))
    for verdict, count in sorted(c.verdicts.items(), key=lambda kv: -kv[1]):
        share = count / c.concluded if c.concluded else 0.0
        stages.add_row(f"  {_cell(verdict)}", f"{count:,}", f"{share:.1%}")
    return stages


class ProgressView:
    """Shows snapshots: live on a terminal, a line every ``interval`` s elsewhere."""

    def __init__(
        self, *, quiet: bool, stream: TextIO | None = None, interval: float = 10.0
    ) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.console = Console(file=self.stream)
        self._live: Live | None = None
        self._last_line = 0.0
        # (elapsed, concluded) of recent snapshots: the ETA follows the recent rate.
        self._recent: deque[tuple[float, int]] = deque()

    def __enter__(self) -> ProgressView:
        if not self.quiet and self.console.is_terminal:
            self._live = Live(table(Snapshot()), console=self.console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, snapshot: Snapshot) -> None:
        if self.quiet:
            return
        eta = self._eta(snapshot)
        if self._live is not None:
            self._live.update(table(snapshot, eta=eta))
        elif time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            print(line(snapshot, eta), file=self.stream, flush=True)

    def _eta(self, snapshot: Snapshot) -> float | None:
        recent = self._recent
        recent.append((snapshot.elapsed, snapshot.counts.concluded))
        while len(recent) > 2 and snapshot.elapsed - recent[1][0] >= _RECENT:
            recent.popleft()
        then, done = recent[0]
        seconds = snapshot.elapsed - then
        if seconds < _RECENT / 2:
            return snapshot.eta
        return snapshot.eta_at((snapshot.counts.concluded - done) / seconds)

    def summary(self, snapshot: Snapshot, title: str) -> None:
        if not self.quiet:
            self.console.print(table(snapshot, title))
