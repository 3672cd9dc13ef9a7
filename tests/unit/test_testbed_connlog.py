"""The responder's connection log (testbed.connlog): tables of connections
with known summaries, and the log file as written and read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.connlog import (
    ConnectionLog,
    ConnectionRecord,
    Outcome,
    parse_log,
    read_log,
    stronger,
    summarise,
    summary_for,
)

S1, S2, S10 = "127.1.0.1", "127.1.0.2", "127.1.0.10"
C1, C2 = "127.0.0.1", "127.0.0.2"


def rec(
    server: str,
    client: str,
    start: float,
    end: float | None,
    outcome: Outcome | None = Outcome.TLS,
) -> ConnectionRecord:
    return ConnectionRecord(server, client, start, end, None if end is None else outcome)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], 0),
        ([rec(S1, C1, 0, 1)], 1),
        # Sequential.
        ([rec(S1, C1, 0, 1), rec(S1, C1, 2, 3)], 1),
        # Touching: one ends exactly when the next starts, not concurrent.
        ([rec(S1, C1, 0, 1), rec(S1, C1, 1, 2), rec(S1, C1, 2, 3)], 1),
        # Overlapping.
        ([rec(S1, C1, 0, 2), rec(S1, C1, 1, 3)], 2),
        # Nested, and a third overlapping both.
        ([rec(S1, C1, 0, 10), rec(S1, C1, 1, 2), rec(S1, C1, 1.5, 5)], 3),
        # Same start.
        ([rec(S1, C1, 0, 1), rec(S1, C1, 0, 1)], 2),
        # Overlaps across clients or across addresses are not one client's.
        ([rec(S1, C1, 0, 2), rec(S1, C2, 1, 3), rec(S2, C1, 1, 3)], 1),
        # Refused connections were open too.
        ([rec(S1, C1, 0, 2), rec(S1, C1, 1, 1.001, Outcome.OVER_LIMIT)], 2),
        # An open connection counts as open until now (100).
        ([rec(S1, C1, 0, None), rec(S1, C1, 50, 60)], 2),
        ([rec(S1, C1, 0, None), rec(S1, C1, 100, 110)], 1),
    ],
)
def test_max_concurrent(records: list[ConnectionRecord], expected: int) -> None:
    assert summarise(records, now=100)["max_concurrent"] == expected


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], None),
        ([rec(S1, C1, 0, 1)], None),
        ([rec(S1, C1, 0, 1), rec(S1, C1, 2.5, 3)], 2.5),
        # Shortest of the consecutive gaps, whatever the order of the records.
        ([rec(S1, C1, 10, 11), rec(S1, C1, 0, 1), rec(S1, C1, 4, 5)], 4),
        # Not across clients nor across addresses.
        ([rec(S1, C1, 0, 1), rec(S1, C2, 0.1, 1), rec(S2, C1, 0.2, 1)], None),
        ([rec(S1, C1, 0, 1), rec(S1, C1, 3, 4), rec(S2, C1, 0.5, 1), rec(S2, C1, 1.5, 2)], 1),
        # Simultaneous starts: a gap of zero.
        ([rec(S1, C1, 5, 6), rec(S1, C1, 5, 7)], 0),
    ],
)
def test_min_gap(records: list[ConnectionRecord], expected: float | None) -> None:
    gap = summarise(records, now=100)["min_gap_s"]
    assert gap == (None if expected is None else pytest.approx(expected))


def test_summary_per_address_and_outcomes() -> None:
    records = [
        rec(S10, C1, 0.0, 1.0, Outcome.GREYLISTED),
        rec(S10, C1, 0.5, 0.6, Outcome.OVER_LIMIT),
        rec(S10, C1, 5.0, 6.0, Outcome.TLS),
        rec(S2, C1, 0.0, 1.0, Outcome.TLS),
        rec(S2, C2, 0.0, 1.0, Outcome.TLS),
        rec(S2, C2, 0.25, 0.5, Outcome.OVER_LIMIT),
        rec(S1, C1, 0.0, None),
    ]
    summary = summarise(records, now=10.0)
    assert summary == {
        "connections": 7,
        "max_concurrent": 2,
        "min_gap_s": 0.25,
        "over_limit": 2,
        # Sorted by address as numbers: .2 before .10.
        "per_address": [
            {
                "address": S1,
                "connections": 1,
                "max_concurrent": 1,
                "min_gap_s": None,
                "over_limit": 0,
            },
            {
                "address": S2,
                "connections": 3,
                "max_concurrent": 2,
                "min_gap_s": 0.25,
                "over_limit": 1,
            },
            {
                "address": S10,
                "connections": 3,
                "max_concurrent": 2,
                "min_gap_s": 0.5,
                "over_limit": 1,
            },
        ],
        "outcomes": {"greylisted": 1, "open": 1, "over_limit": 2, "tls": 3},
    }
    # JSON-able as it is.
    assert json.loads(json.dumps(summary)) == summary


def test_empty_summary() -> None:
    assert summarise([], now=0) == {
        "connections": 0,
        "max_concurrent": 0,
        "min_gap_s": None,
        "over_limit": 0,
        "per_address": [],
        "outcomes": {},
    }


@pytest.mark.parametrize(
    ("current", "new", "kept"),
    [
        (Outcome.NO_TLS, Outcome.TLS, Outcome.TLS),
        (Outcome.TLS, Outcome.TIMEOUT, Outcome.TLS),
        (Outcome.TLS, Outcome.ABORTED, Outcome.TLS),
        (Outcome.NO_TLS, Outcome.ABORTED, Outcome.ABORTED),
        (Outcome.NO_TLS, Outcome.TIMEOUT, Outcome.TIMEOUT),
        (Outcome.TARPIT, Outcome.TIMEOUT, Outcome.TARPIT),
        (Outcome.GREYLISTED, Outcome.TIMEOUT, Outcome.GREYLISTED),
        (Outcome.TARPIT, Outcome.OVER_LIMIT, Outcome.OVER_LIMIT),
        (Outcome.NO_TLS, Outcome.RESET, Outcome.RESET),
    ],
)
def test_stronger(current: Outcome, new: Outcome, kept: Outcome) -> None:
    assert stronger(current, new) is kept


def test_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "connections.jsonl"
    log = ConnectionLog(path)
    first = log.opened(S1, C1, 1000.1234567)
    second = log.opened(S2, C2, 1001.0)
    log.closed(first, 1002.5, Outcome.TLS, "mx.a.test")
    log.flush()
    assert read_log(path) == [
        ConnectionRecord(S1, C1, 1000.123457, 1002.5, Outcome.TLS, "mx.a.test"),
        ConnectionRecord(S2, C2, 1001.0),
    ]
    log.closed(second, 1003.0, Outcome.NO_TLS, "")
    # Unflushed lines are not visible yet; close flushes them.
    assert read_log(path)[1].end is None
    log.close()
    assert read_log(path)[1] == ConnectionRecord(S2, C2, 1001.0, 1003.0, Outcome.NO_TLS)
    assert summary_for(path, now=2000)["connections"] == 2


def test_line_format(tmp_path: Path) -> None:
    path = tmp_path / "connections.jsonl"
    log = ConnectionLog(path)
    log.closed(log.opened(S1, C1, 1764835200.123456), 1764835200.5, Outcome.RESET, "")
    log.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["ev"] == "run"
    assert lines[1:] == [
        '{"ev":"open","id":1,"server":"127.1.0.1","client":"127.0.0.1","start":1764835200.123456}',
        '{"ev":"close","id":1,"end":1764835200.5,"outcome":"reset","sni":""}',
    ]


OPEN_1 = '{"ev":"open","id":1,"server":"127.1.0.1","client":"127.0.0.1","start":10.0}\n'
CLOSE_1 = '{"ev":"close","id":1,"end":11.0,"outcome":"no_tls","sni":""}\n'
OPEN_2 = '{"ev":"open","id":2,"server":"127.1.0.1","client":"127.0.0.1","start":12.0}\n'


@pytest.mark.parametrize("cut", [1, 10, len(CLOSE_1) - 1])
def test_partial_last_line_is_skipped(cut: int) -> None:
    records = parse_log([OPEN_1, CLOSE_1[:cut]])
    assert records == [ConnectionRecord(S1, C1, 10.0)]


def test_partial_last_line_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "connections.jsonl"
    path.write_text(OPEN_1 + CLOSE_1 + OPEN_2[:20])
    assert read_log(path) == [ConnectionRecord(S1, C1, 10.0, 11.0, Outcome.NO_TLS)]


def test_a_new_run_aborts_what_the_last_left_open() -> None:
    lines = [
        '{"ev":"run","pid":1,"time":5.0}\n',
        OPEN_1,
        CLOSE_1,
        OPEN_2,
        '{"ev":"run","pid":2,"time":20.0}\n',
        # Ids start again in a new run.
        OPEN_1.replace("10.0", "21.0"),
    ]
    assert parse_log(lines) == [
        ConnectionRecord(S1, C1, 10.0, 11.0, Outcome.NO_TLS),
        ConnectionRecord(S1, C1, 12.0, 20.0, Outcome.ABORTED),
        ConnectionRecord(S1, C1, 21.0),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "not json\n",
        '{"ev":"bogus"}\n',
        '{"ev":"open","id":1}\n',
        '{"ev":"close","id":7,"end":1.0,"outcome":"tls","sni":""}\n',
        '{"ev":"close","id":1,"end":1.0,"outcome":"fine","sni":""}\n',
    ],
)
def test_a_bad_line_before_the_last_is_an_error(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_log([OPEN_1, line, OPEN_2])
