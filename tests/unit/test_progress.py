"""The progress display: what it says, and an ETA that follows the recent rate."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace

from rich.console import Console

from scanner.progress import Counters, Gauges, ProgressView, Snapshot, line, table


def snapshot(elapsed: float, concluded: int, **gauges: object) -> Snapshot:
    counts = Counters(
        read=1000, admitted=1000, concluded=concluded, verdicts=Counter(no_dane=concluded)
    )
    return Snapshot(counts, elapsed=elapsed, total=2000, gauges=Gauges(**gauges))  # type: ignore[arg-type]


def test_the_line_says_what_is_in_flight_and_what_limits() -> None:
    now = snapshot(10.0, 500, domains=120, queries=300, parked=7, resolve_p50=0.25,
                   resolve_p90=0.9, limit="resolver")  # fmt: skip
    text = line(now)
    for phrase in ("120 resolving", "300 DNS queries", "7 waiting for mail servers",
                   "resolve p50/p90 250 ms/900 ms", "limited by resolver"):  # fmt: skip
        assert phrase in text


def test_the_table_has_a_row_per_gauge() -> None:
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(table(snapshot(10.0, 500, limit="politeness")))
    for phrase in ("domains resolving / window", "DNS queries / window", "limited by",
                   "politeness"):  # fmt: skip
        assert phrase in rendered.getvalue()


def test_the_eta_follows_the_recent_rate() -> None:
    view = ProgressView(quiet=False, stream=io.StringIO(), interval=0.0)
    # 1,000 domains in the first 10 s, then only 1 a second: mail servers set the pace.
    view.update(snapshot(10.0, 1000))
    view.update(snapshot(40.0, 1030))
    last = snapshot(70.0, 1060)
    view.update(last)
    left = 2000 - 1060
    assert last.eta == left / (1060 / 70.0)  # the average: far too hopeful
    written = view.stream.getvalue()  # type: ignore[attr-defined]
    assert written.rstrip().endswith(f"ETA 0:{left // 60:02d}:{left % 60:02d}; no_dane 1060")


def test_gauges_of_workers_add_up() -> None:
    one = Gauges(domains=10, queries=30, parked=2, resolve_p90=0.5, limit="rate cap")
    two = replace(one, domains=5, resolve_p90=0.8, limit="")
    both = one + two
    assert (both.domains, both.queries, both.parked) == (15, 60, 4)
    assert both.resolve_p90 == 0.8
    assert both.limit == "rate cap"


def test_workers_snapshots_add_up_counter_by_counter() -> None:
    one = Counters(read=3, concluded=2, verdicts=Counter(no_dane=2), dns=Counter(sent=10))
    two = Counters(read=4, concluded=1, verdicts=Counter(no_dane=1, dane_valid=1))
    total = Snapshot(one, 1.0, gauges=Gauges(domains=2)) + Snapshot(two, 3.0, 7, Gauges(domains=1))
    assert total.counts == Counters(
        read=7, concluded=3, verdicts=Counter(no_dane=3, dane_valid=1), dns=Counter(sent=10)
    )
    assert (total.elapsed, total.total, total.gauges.domains) == (3.0, 7, 3)
    copy = one.copy()
    copy.verdicts["no_dane"] += 1
    assert one.verdicts == Counter(no_dane=2)  # a snapshot's counts are its own
