"""Progress of a long scan: a live rich display on a terminal, a plain periodic
line otherwise (logs, CI, nohup), nothing with --quiet; a summary at the end."""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TextIO

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
            self.domains + other.domains,
            self.domain_window + other.domain_window,
            self.queries + other.queries,
            self.query_window + other.query_window,
            self.parked + other.parked,
            self.connections + other.connections,
            max(self.resolve_p50, other.resolve_p50),
            max(self.resolve_p90, other.resolve_p90),
            max(self.handshake_p50, other.handshake_p50),
            max(self.handshake_p90, other.handshake_p90),
            max(self.query_p50, other.query_p50),
            self.limit or other.limit,
            self.retrying + other.retrying,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the display shows; summed over workers."""

    read: int = 0
    skipped: int = 0
    admitted: int = 0
    resolved: int = 0
    handshaken: int = 0
    concluded: int = 0
    written: int = 0
    sessions: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    total: int | None = None  # lines in the input, when known
    gauges: Gauges = field(default_factory=Gauges)
    transient: int = 0  # rows written whose outcome is still transient
    retried: int = 0  # lookups redone after a transient outcome (counted or not)
    outages: int = 0  # resolver outages seen

    def __add__(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            self.read + other.read,
            self.skipped + other.skipped,
            self.admitted + other.admitted,
            self.resolved + other.resolved,
            self.handshaken + other.handshaken,
            self.concluded + other.concluded,
            self.written + other.written,
            self.sessions + other.sessions,
            self.verdicts + other.verdicts,
            max(self.elapsed, other.elapsed),
            self.total if self.total is not None else other.total,
            self.gauges + other.gauges,
            self.transient + other.transient,
            self.retried + other.retried,
            self.outages + other.outages,
        )

    @property
    def rate(self) -> float:
        return self.concluded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return self.eta_at(self.rate)

    def eta_at(self, rate: float) -> float | None:
        """Seconds left at ``rate`` domains a second (the recent rate says
        more than the average once mail servers set the pace)."""
        if self.total is None or rate <= 0:
            return None
        left = max(0, self.total - self.read) + (self.admitted - self.concluded)
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
    top = ", ".join(f"{printable(k)} {v}" for k, v in s.verdicts.most_common(6))
    g = s.gauges
    return (
        f"scan: {s.concluded} domains done ({s.rate:.0f}/s), {s.written} written, "
        f"{g.domains} resolving, {g.queries} DNS queries, {g.parked} waiting for mail servers, "
        f"{g.retrying} to retry, {s.transient} transient, "
        f"{s.sessions} TLS sessions, resolve p50/p90 {_ms(g.resolve_p50)}/{_ms(g.resolve_p90)}, "
        f"limited by {printable(g.limit) or '-'}, elapsed {_clock(s.elapsed)}, "
        f"ETA {_clock(eta if eta is not None else s.eta)}" + (f"; {top}" if top else "")
    )


def table(s: Snapshot, title: str = "danescan", eta: float | None = None) -> Table:
    stages = Table(title=title, show_header=True, header_style="bold")
    stages.add_column("stage")
    stages.add_column("done", justify="right")
    stages.add_column("per second", justify="right")
    for name, value in (
        ("read", s.read),
        ("admitted", s.admitted),
        ("resolved", s.resolved),
        ("handshake stage", s.handshaken),
        ("concluded", s.concluded),
        ("written", s.written),
    ):
        rate = value / s.elapsed if s.elapsed > 0 else 0.0
        stages.add_row(name, f"{value:,}", f"{rate:,.0f}")
    g = s.gauges
    stages.add_row("TLS sessions", f"{s.sessions:,}", "")
    for label, left, right in (
        ("domains resolving / window", g.domains, g.domain_window),
        ("DNS queries / window", g.queries, g.query_window),
        ("waiting for mail servers / connections", g.parked, g.connections),
    ):
        stages.add_row(label, f"{left:,}", f"{right:,}")
    stages.add_row("resolve p50 / p90", _ms(g.resolve_p50), _ms(g.resolve_p90))
    stages.add_row("mail servers p50 / p90", _ms(g.handshake_p50), _ms(g.handshake_p90))
    stages.add_row("DNS query p50", _ms(g.query_p50), "")
    stages.add_row("to retry / retried", f"{g.retrying:,}", f"{s.retried:,}")
    stages.add_row("rows left transient", f"{s.transient:,}", "")
    stages.add_row("resolver outages", f"{s.outages:,}", "")
    stages.add_row("limited by", _cell(g.limit) or "-", "")
    stages.add_row("skipped (dupes, shards, resumed)", f"{s.skipped:,}", "")
    stages.add_row("elapsed / ETA", _clock(s.elapsed), _clock(eta if eta is not None else s.eta))
    for verdict, count in sorted(s.verdicts.items(), key=lambda kv: -kv[1]):
        share = count / s.concluded if s.concluded else 0.0
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
        recent.append((snapshot.elapsed, snapshot.concluded))
        while len(recent) > 2 and snapshot.elapsed - recent[1][0] >= _RECENT:
            recent.popleft()
        then, done = recent[0]
        seconds = snapshot.elapsed - then
        if seconds < _RECENT / 2:
            return snapshot.eta
        return snapshot.eta_at((snapshot.concluded - done) / seconds)

    def summary(self, snapshot: Snapshot, title: str) -> None:
        if not self.quiet:
            self.console.print(table(snapshot, title))
