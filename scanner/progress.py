"""Progress of a long scan: a live rich display on a terminal, a plain periodic
line otherwise (logs, CI, nohup), nothing with --quiet; a summary at the end."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table


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
        )

    @property
    def rate(self) -> float:
        return self.concluded / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.total is None or self.rate <= 0:
            return None
        left = max(0, self.total - self.read) + (self.admitted - self.concluded)
        return left / self.rate


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def line(s: Snapshot) -> str:
    top = ", ".join(f"{k} {v}" for k, v in s.verdicts.most_common(6))
    return (
        f"scan: {s.concluded} domains done ({s.rate:.0f}/s), {s.written} written, "
        f"{s.admitted - s.concluded} in flight, {s.sessions} TLS sessions, "
        f"elapsed {_clock(s.elapsed)}, ETA {_clock(s.eta)}" + (f"; {top}" if top else "")
    )


def table(s: Snapshot, title: str = "danescan") -> Table:
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
    stages.add_row("TLS sessions", f"{s.sessions:,}", "")
    stages.add_row("skipped (dupes, shards, resumed)", f"{s.skipped:,}", "")
    stages.add_row("elapsed / ETA", _clock(s.elapsed), _clock(s.eta))
    for verdict, count in sorted(s.verdicts.items(), key=lambda kv: -kv[1]):
        share = count / s.concluded if s.concluded else 0.0
        stages.add_row(f"  {verdict}", f"{count:,}", f"{share:.1%}")
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
        if self._live is not None:
            self._live.update(table(snapshot))
        elif time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            print(line(snapshot), file=self.stream, flush=True)

    def summary(self, snapshot: Snapshot, title: str) -> None:
        if not self.quiet:
            self.console.print(table(snapshot, title))
