"""The responder's connection log and its summary: who connected to which mail
host, when, for how long, with which SNI name (RFC 6066 section 3) and how the
connection ended. It shows how politely a scanner treats the hosts it
surveys: how many connections it held open at once to one address and how
soon it came back.

The log is JSON lines, appended by one responder process at a time, two lines
per connection, one when it is accepted and one when it ends, so that a
reader sees the connections still open too::

    {"ev":"run","pid":4242,"time":1764835200.000001}
    {"ev":"open","id":1,"server":"127.10.0.5","client":"127.0.0.1","start":1764835200.123456}
    {"ev":"close","id":1,"end":1764835200.223456,"outcome":"tls","sni":"mx.a.test"}

A "run" line starts each responder process; ``id`` counts connections within
a run. Times are the wall clock (``time.time()``) to the microsecond. A
connection left open by a run that ended without closing it (the process was
killed) counts as aborted at the start of the next run. The writer buffers
lines and the responder flushes them every ``FLUSH_INTERVAL`` seconds and at
exit; a reader may therefore meet a partial last line, which it skips.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, TypedDict

# Seconds between flushes of the responder's log buffer: a reader lags a
# running responder by at most this much (plus its own read).
FLUSH_INTERVAL = 0.25


class Outcome(StrEnum):
    """How a connection ended."""

    TLS = "tls"  # the TLS handshake completed
    NO_TLS = "no_tls"  # closed without TLS (QUIT after EHLO, client gone, 454, ...)
    GREYLISTED = "greylisted"  # EHLO and HELO were answered 450 on this connection
    OVER_LIMIT = "over_limit"  # refused with 421: too many connections from the client
    RESET = "reset"  # the TLS handshake was reset (RST) after the client's hello
    HANDSHAKE_FAILED = "handshake_failed"  # the TLS handshake started and failed
    TIMEOUT = "timeout"  # the client sent nothing for the idle timeout
    SILENT = "silent"  # a host that never speaks
    TARPIT = "tarpit"  # a host that stutters its replies
    ABORTED = "aborted"  # still open when the responder shut down


# A connection can meet several of these (a greylisted client may time out);
# it keeps the one that says most about what the host did to it, highest here.
_PRECEDENCE = {
    outcome: rank
    for rank, outcome in enumerate(
        (
            Outcome.NO_TLS,
            Outcome.ABORTED,
            Outcome.TIMEOUT,
            Outcome.TARPIT,
            Outcome.SILENT,
            Outcome.TLS,
            Outcome.HANDSHAKE_FAILED,
            Outcome.RESET,
            Outcome.GREYLISTED,
            Outcome.OVER_LIMIT,
        )
    )
}


def stronger(current: Outcome, new: Outcome) -> Outcome:
    """The outcome a connection keeps when ``new`` happens to it after ``current``."""
    return new if _PRECEDENCE[new] > _PRECEDENCE[current] else current


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """One connection as the log tells it; ``end`` and ``outcome`` are None while open."""

    server: str
    client: str
    start: float
    end: float | None = None
    outcome: Outcome | None = None
    sni: str = ""


def _time(value: float) -> float:
    return round(value, 6)


def _line(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":")) + "\n"


class ConnectionLog:
    """The responder's side: appends lines to the log file through a buffer.

    ``flush`` is cheap when nothing is pending; the responder calls it every
    ``FLUSH_INTERVAL`` seconds and ``close`` at exit. Writes are small appends
    to a local file, done synchronously from the event loop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="ascii")
        self._pending: list[str] = []
        self._next_id = 0
        self._pending.append(_line({"ev": "run", "pid": os.getpid(), "time": _time(time.time())}))
        self.flush()

    def opened(self, server: str, client: str, start: float) -> int:
        """Record an accepted connection; returns its id for ``closed``."""
        self._next_id += 1
        self._pending.append(
            _line(
                {
                    "ev": "open",
                    "id": self._next_id,
                    "server": server,
                    "client": client,
                    "start": _time(start),
                }
            )
        )
        return self._next_id

    def closed(self, connection_id: int, end: float, outcome: Outcome, sni: str) -> None:
        self._pending.append(
            _line(
                {
                    "ev": "close",
                    "id": connection_id,
                    "end": _time(end),
                    "outcome": outcome.value,
                    "sni": sni,
                }
            )
        )

    def flush(self) -> None:
        if not self._pending:
            return
        self._file.write("".join(self._pending))
        self._pending.clear()
        self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


# --- reading ------------------------------------------------------------------------


def parse_log(lines: Iterable[str]) -> list[ConnectionRecord]:
    """The connections of a log's lines, in the order they were accepted.

    A last line without its newline is one the responder is still writing and
    is skipped; any other line that is not a log line is an error (ValueError).
    """
    records: list[ConnectionRecord] = []
    # Index in ``records`` of each connection of the current run still open.
    open_ids: dict[int, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.endswith("\n"):
            break
        try:
            _apply(json.loads(line), records, open_ids)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"line {number} is not a connection log line: {exc!r}") from exc
    return records


def _apply(
    document: dict[str, Any], records: list[ConnectionRecord], open_ids: dict[int, int]
) -> None:
    event = document["ev"]
    if event == "run":
        _abort_open(records, open_ids, float(document["time"]))
    elif event == "open":
        open_ids[int(document["id"])] = len(records)
        records.append(
            ConnectionRecord(
                server=str(document["server"]),
                client=str(document["client"]),
                start=float(document["start"]),
            )
        )
    elif event == "close":
        index = open_ids.pop(int(document["id"]))
        opened = records[index]
        records[index] = ConnectionRecord(
            server=opened.server,
            client=opened.client,
            start=opened.start,
            end=float(document["end"]),
            outcome=Outcome(document["outcome"]),
            sni=str(document["sni"]),
        )
    else:
        raise ValueError(f"unknown event {event!r}")


def _abort_open(records: list[ConnectionRecord], open_ids: dict[int, int], at: float) -> None:
    # The previous run ended without closing these: it was killed.
    for index in open_ids.values():
        opened = records[index]
        records[index] = ConnectionRecord(
            server=opened.server,
            client=opened.client,
            start=opened.start,
            end=max(at, opened.start),
            outcome=Outcome.ABORTED,
        )
    open_ids.clear()


def read_log(path: Path) -> list[ConnectionRecord]:
    """The connections of the log file at ``path`` (see ``parse_log``)."""
    with path.open(encoding="ascii", newline="") as file:
        return parse_log(file)


# --- the summary ---------------------------------------------------------------------


class AddressSummary(TypedDict):
    address: str
    connections: int
    max_concurrent: int
    min_gap_s: float | None
    over_limit: int


class Summary(TypedDict):
    connections: int
    max_concurrent: int
    min_gap_s: float | None
    over_limit: int
    per_address: list[AddressSummary]
    outcomes: dict[str, int]


# The key ``summarise`` counts connections still open under in ``outcomes``.
OPEN = "open"


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    # Ends sort before starts at the same instant: a connection that ends
    # exactly when the next starts was not open at the same time as it.
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = highest = 0
    for _, step in events:
        current += step
        highest = max(highest, current)
    return highest


def _min_gap(starts: list[float]) -> float | None:
    if len(starts) < 2:
        return None
    ordered = sorted(starts)
    return min(b - a for a, b in itertools.pairwise(ordered))


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (99, 0, address)
    return (ip.version, int(ip), address)


def _smallest(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def summarise(records: Iterable[ConnectionRecord], *, now: float) -> Summary:
    """How the clients of the logged connections treated each address.

    ``max_concurrent`` is the most connections one client held open at once
    to one address, refused ones included (the client did open them);
    ``min_gap_s`` the shortest time between the starts of two connections
    from one client to one address (None when no client came twice);
    ``over_limit`` the connections refused with 421 for exceeding the
    address's limits. A connection still open counts as open until ``now``
    and under "open" in ``outcomes``.
    """
    by_pair: defaultdict[tuple[str, str], list[ConnectionRecord]] = defaultdict(list)
    outcomes: defaultdict[str, int] = defaultdict(int)
    for record in records:
        by_pair[(record.server, record.client)].append(record)
        outcomes[OPEN if record.outcome is None else record.outcome.value] += 1
    per_address: dict[str, AddressSummary] = {}
    for (server, _client), pair in by_pair.items():
        intervals = [(r.start, max(r.start, now if r.end is None else r.end)) for r in pair]
        gap = _min_gap([r.start for r in pair])
        refused = sum(r.outcome is Outcome.OVER_LIMIT for r in pair)
        entry = per_address.setdefault(
            server,
            AddressSummary(
                address=server, connections=0, max_concurrent=0, min_gap_s=None, over_limit=0
            ),
        )
        entry["connections"] += len(pair)
        entry["max_concurrent"] = max(entry["max_concurrent"], _max_overlap(intervals))
        entry["min_gap_s"] = _smallest((entry["min_gap_s"], gap))
        entry["over_limit"] += refused
    addresses = [per_address[key] for key in sorted(per_address, key=_address_key)]
    for entry in addresses:
        if entry["min_gap_s"] is not None:
            entry["min_gap_s"] = round(entry["min_gap_s"], 6)
    return Summary(
        connections=sum(entry["connections"] for entry in addresses),
        max_concurrent=max((entry["max_concurrent"] for entry in addresses), default=0),
        min_gap_s=_smallest(entry["min_gap_s"] for entry in addresses),
        over_limit=sum(entry["over_limit"] for entry in addresses),
        per_address=addresses,
        outcomes=dict(sorted(outcomes.items())),
    )


def summary_for(log: Path, *, now: float | None = None) -> Summary:
    """``summarise`` the connection log file ``log`` (the responder config's
    ``connection_log``); ``now`` defaults to the wall clock. Raises OSError when
    the file cannot be read, ValueError when it is not a connection log."""
    records = read_log(log)
    return summarise(records, now=time.time() if now is None else now)
