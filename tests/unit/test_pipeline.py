"""The pipeline's per-domain plumbing, without a network: admission (duplicates,
shards, resume), the handshake stage's fan-out, the writer loop, and the
garbage-collector settings of a scan."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scanner.assemble import Observation, TlsTarget
from scanner.collector import collector_for_scan
from scanner.config import ScanConfig, Shard
from scanner.flight import Flight, Hold
from scanner.flow import FlowController
from scanner.handshake.session import SessionResult
from scanner.ingest.normalise import normalise
from scanner.ingest.reader import InputName
from scanner.output.writer import PartWriter, Resumed
from scanner.pipeline import Pipeline
from scanner.ratelimit import Window
from scanner.resolve.discover import DomainResolution
from scanner.resolve.policy import MxDecision, MxKind
from scanner.results import DomainResult
from scanner.seen import name_key
from scanner.status import DnssecStatus, DomainVerdict, SmtpStatus
from tests.unit.test_output import WHEN, dane_result


def config(tmp_path: Path, **changes: object) -> ScanConfig:
    base = ScanConfig(
        input="-", output=tmp_path, resolvers=("127.0.0.1:53",), ehlo_name="scanner.example.org"
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def item(line: int, raw: str) -> InputName:
    return InputName(line, raw, normalise(raw))


def admitted(pipeline: Pipeline, names: list[str]) -> list[str]:
    found = []
    for line, raw in enumerate(names, 1):
        work = pipeline._admit(item(line, raw))
        if isinstance(work, Observation):
            found.append(work.domain)
    return found


def test_duplicates_are_admitted_once(tmp_path: Path) -> None:
    pipeline = Pipeline(config(tmp_path))
    names = ["a.example", "B.example", "a.example", "A.EXAMPLE.", "b.example", "c.example"]
    assert admitted(pipeline, names) == ["a.example", "b.example", "c.example"]
    assert pipeline.counters.skipped == 3
    assert len(pipeline._seen) == 3


def test_resumed_domains_are_skipped(tmp_path: Path) -> None:
    resumed = Resumed()
    resumed.domains.add(name_key("b.example"))
    pipeline = Pipeline(config(tmp_path), resumed=resumed)
    assert admitted(pipeline, ["a.example", "b.example", "c.example"]) == [
        "a.example",
        "c.example",
    ]


def test_shards_partition_admission(tmp_path: Path) -> None:
    names = [f"d{i}.example" for i in range(300)]
    seen: list[str] = []
    for index in range(3):
        pipeline = Pipeline(config(tmp_path), shard=Shard(index, 3))
        mine = admitted(pipeline, names)
        assert all(Shard(index, 3).owns(name_key(name)) for name in mine)
        # Other shards' names are not remembered: each worker keeps its own.
        assert len(pipeline._seen) == len(mine)
        seen += mine
    assert sorted(seen) == sorted(names)


def test_input_errors_become_rows(tmp_path: Path) -> None:
    pipeline = Pipeline(config(tmp_path, now_override=WHEN.isoformat()))
    work = pipeline._admit(item(4, "not a domain"))
    assert isinstance(work, DomainResult)
    assert (work.verdict, work.input_line, work.scanned_at) == (DomainVerdict.INPUT_ERROR, 4, WHEN)


class FakeHandshaker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []

    async def handshake(self, address: str, sni: str, names: tuple[str, ...] = ()) -> SessionResult:
        self.calls.append((address, sni, names))
        await asyncio.sleep(0)
        return SessionResult(address, 25, sni, SmtpStatus.CONNECT_REFUSED)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_handshake_stage_handshakes_every_target(tmp_path: Path, count: int) -> None:
    pipeline = Pipeline(config(tmp_path))
    handshaker = FakeHandshaker()
    work = Observation(1, "a.example", 0.0, WHEN)
    work.targets = [
        TlsTarget(f"mx{i}.a.example.", f"192.0.2.{i}", f"mx{i}.a.example", ("a.example",))
        for i in range(count)
    ]
    asyncio.run(pipeline._handshake(handshaker, work))  # type: ignore[arg-type]
    assert sorted(handshaker.calls) == [
        (f"192.0.2.{i}", f"mx{i}.a.example", ("a.example",)) for i in range(count)
    ]
    assert sorted(work.sessions) == [(f"mx{i}.a.example.", f"192.0.2.{i}") for i in range(count)]
    assert all(s.address == key[1] for key, s in work.sessions.items())
    assert (pipeline.counters.sessions, pipeline.counters.handshaken) == (count, 1)


def test_writer_loop_drains_the_queue_and_writes_parts(tmp_path: Path) -> None:
    pipeline = Pipeline(config(tmp_path, part_rows=4))
    writer = PartWriter(tmp_path, 0)

    async def main() -> None:
        inbox: asyncio.Queue[DomainResult] = asyncio.Queue()
        for i in range(10):
            inbox.put_nowait(dane_result(f"d{i}.example", i))
        task = asyncio.create_task(pipeline._write(inbox, writer, None))
        await inbox.join()
        task.cancel()

    asyncio.run(main())
    assert pipeline.counters.concluded == 10
    assert pipeline.counters.verdicts == {"dane_valid": 10}
    # Parts of four rows as the rows came; the last two wait for the next part.
    assert (writer.written, len(writer), len(writer.parts)) == (8, 2, 2)
    assert pipeline.counters.written == 8
    assert pq.read_table(tmp_path / writer.parts[0]).column("domain").to_pylist() == [
        f"d{i}.example" for i in range(4)
    ]


def test_writer_loop_writes_a_due_part_while_no_domain_finishes(tmp_path: Path) -> None:
    pipeline = Pipeline(config(tmp_path, part_seconds=0.05))
    writer = PartWriter(tmp_path, 0)

    async def main() -> None:
        inbox: asyncio.Queue[DomainResult] = asyncio.Queue()
        inbox.put_nowait(dane_result("a.example", 1))
        task = asyncio.create_task(pipeline._write(inbox, writer, None))
        for _ in range(60):  # the loop wakes up at least once a second
            await asyncio.sleep(0.05)
            if writer.written:
                break
        task.cancel()

    asyncio.run(main())
    assert writer.written == 1
    assert len(writer.parts) == 1


def test_collector_settings_are_restored() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with collector_for_scan(young=12_345):
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    "change",
    [
        {"host_cache_size": 0},
        {"session_cache_size": 0},
        {"cert_pool_size": 0},
        {"part_rows": 0},
    ],
)
def test_caps_are_validated(tmp_path: Path, change: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        config(tmp_path, **change)


def test_caps_reach_the_caches(tmp_path: Path) -> None:
    scan = config(tmp_path, session_cache_size=7, cert_pool_size=9)
    assert scan.polite_settings.cache_size == 7
    assert Pipeline(scan)._pool.max_certificates == 9


class FakeDiscoverer:
    """Answers each lookup with the next of ``transient``: True a transient outcome."""

    def __init__(self, transient: list[bool]) -> None:
        self.transient = transient
        self.refreshes: list[bool] = []

    async def domain(self, domain: str, *, refresh: bool = False) -> DomainResolution:
        self.refreshes.append(refresh)
        flag = self.transient[len(self.refreshes) - 1]
        mx = MxDecision(MxKind.FAILED if flag else MxKind.NXDOMAIN, DnssecStatus.INDETERMINATE)
        return DomainResolution(domain + ".", mx, None, (), transient=flag)


class FakeWatchdog:
    """A resolver whose outage spoilt the lookups numbered in ``spoilt``."""

    def __init__(self, spoilt: set[int]) -> None:
        self.spoilt = spoilt
        self.judgements = 0

    async def judged(self, when: float) -> None:
        self.judgements += 1

    def overlaps(self, start: float, end: float) -> bool:
        return self.judgements in self.spoilt

    async def up(self) -> None:
        return None


@pytest.mark.parametrize(
    ("answers", "spoilt", "retries", "lookups", "attempts", "transient"),
    [
        ([False], set(), 2, 1, 1, False),  # final at once
        ([True, False], set(), 2, 2, 2, False),  # a timeout, then an answer
        ([True, True, True, True], set(), 2, 3, 3, True),  # given up after 1 + 2
        ([True, True], set(), 0, 1, 1, True),  # --retries 0
        ([True, True, False], {1, 2}, 0, 3, 1, False),  # an outage's failures not counted
        ([True, True, True, True], {2}, 2, 4, 3, True),  # one spoilt among the retries
    ],
)
def test_transient_lookups_are_retried_up_to_the_bound_and_outages_not_counted(
    tmp_path: Path,
    answers: list[bool],
    spoilt: set[int],
    retries: int,
    lookups: int,
    attempts: int,
    transient: bool,
) -> None:
    pipeline = Pipeline(config(tmp_path, retries=retries, retry_backoff=0.0))
    discoverer = FakeDiscoverer(answers)

    async def scenario() -> Observation:
        flight = Flight(Window(10), Window(10), FlowController(pipeline._flow_settings()))
        await flight.window.acquire()
        work = Observation(1, "a.example", 0.0, WHEN)
        hold = Hold()
        await pipeline._resolve(discoverer, work, flight, hold, FakeWatchdog(spoilt))  # type: ignore[arg-type]
        assert hold.window
        assert not hold.parked
        assert flight.window.used == 1
        assert flight.parked.used == 0
        return work

    work = asyncio.run(scenario())
    # The resolve stage counts what it did, and nothing of the handshake stage's.
    assert (pipeline.counters.resolved, pipeline.counters.handshaken) == (1, 0)
    assert len(discoverer.refreshes) == lookups
    assert discoverer.refreshes == [False] + [True] * (lookups - 1)
    assert work.attempts == attempts
    assert work.resolution is not None
    assert work.resolution.transient is transient
