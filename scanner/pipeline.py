"""Wiring of a scan: ingest -> resolve -> handshake -> match -> output.

A token bucket admits domains at ``--rate`` per second (this process's share
of it) into a window of domains in flight, each a task of its own from
admission to matching. The window's size follows the latency measured on
the way (scanner.flow: Little's law, backed off when the resolver is
congested), so the rate asked for is the rate reached wherever the network
allows it. A domain leaves the window once resolved; one that waits for mail
servers is parked (a bounded count of them) while the handshaker paces each
address, so a crowded address delays only the domains behind it. Matching
and writing follow through bounded queues. Memory is bounded by the caps,
never by the size of the input. The per-host DNS cache
(scanner.resolve.discover) and the per-(address, SNI) handshake cache
(scanner.handshake.polite) make work that many domains share happen once.

Nothing a remote party does raises out of a stage: the stages return outcome
values, and a bug that does raise is recorded on that domain's row (verdict
None, the exception text as ``error``) rather than stopping the scan.

A lookup whose outcome is transient (a timeout, a SERVFAIL that is no
validation failure) is done again after a pause, up to ``retries`` times;
the handshaker does the same for sessions. A watchdog (scanner.resolve.
watchdog) tells an outage of the resolver from the domains' own failures:
during one nothing is admitted, and a lookup the outage spoilt is done again
once the resolver is back, without counting as an attempt. An outage beyond
the scan's patience ends it with ResolverLost; the domains it caught are not
written, so that ``--resume`` does them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import time
import traceback
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from scanner.conclude import Observation, conclude, match_jobs, tls_targets
from scanner.config import ScanConfig, Shard, StartTlsMode
from scanner.flow import Flow, FlowController, FlowSettings, Limit
from scanner.handshake.contact import ContactPolicy, contact_policy
from scanner.handshake.polite import Handshaker, backoff
from scanner.handshake.session import SessionResult, client_context
from scanner.ingest.reader import InputName, read_names
from scanner.ingest.seen import KeySet, name_key
from scanner.match.batch import CertPool, match_batch
from scanner.match.outcome import MatchResult
from scanner.output.jsonlog import domain_json
from scanner.output.rows import domain_row
from scanner.output.writer import PartWriter, Resumed
from scanner.progress import Gauges, Snapshot
from scanner.ratelimit import TokenBucket, Window
from scanner.resolve.client import DnsClient
from scanner.resolve.discover import Discoverer
from scanner.resolve.health import Health, ResolverLost
from scanner.resolve.watchdog import Watchdog
from scanner.results import DomainResult
from scanner.status import DomainVerdict

_READ_CHUNK = 2000
# How often the flow control looks at what happened and resizes the windows.
_CONTROL_INTERVAL = 0.5
# Durations kept for the percentiles of the progress display.
_LATENCY_SAMPLES = 2048
# A process busy for this share of the time is what limits the rate.
_CPU_BOUND = 0.9


@dataclass(slots=True)
class Progress:
    """Counters the progress display reads; only the pipeline writes them."""

    read: int = 0
    skipped: int = 0  # duplicates, other shards, already done (resume)
    admitted: int = 0
    resolved: int = 0
    handshaken: int = 0
    concluded: int = 0
    written: int = 0
    sessions: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    gauges: Gauges = field(default_factory=Gauges)  # set by the flow control
    transient: int = 0  # rows written whose outcome is still transient
    retried: int = 0  # lookups done again
    outages: int = 0  # of the resolver

    def snapshot(self, total: int | None = None) -> Snapshot:
        return Snapshot(
            self.read, self.skipped, self.admitted, self.resolved, self.handshaken,
            self.concluded, self.written, self.sessions, Counter(self.verdicts),
            time.monotonic() - self.started, total, self.gauges, self.transient,
            self.retried, self.outages,
        )  # fmt: skip


@dataclass(slots=True)
class _Hold:
    """Which of the flight's windows one domain holds a place in."""

    window: bool = True
    parked: bool = False


@dataclass(slots=True)
class _Flight:
    """The domains of one process between admission and matching."""

    window: Window  # resolving: sized by the flow control
    parked: Window  # waiting for mail servers: a fixed cap
    controller: FlowController
    active: int = 0
    ingesting: bool = True
    retrying: int = 0  # domains waiting to be looked up again
    resolve_times: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    handshake_times: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def resolved(self, seconds: float) -> None:
        self.controller.domain_done(seconds)
        self.resolve_times.append(seconds)

    def handshaken(self, seconds: float) -> None:
        self.handshake_times.append(seconds)

    async def park(self, hold: _Hold) -> None:
        """Out of the window (the domain costs the resolver nothing while it
        waits), within the cap on waiting domains; a full cap holds
        admission back."""
        if not hold.parked:
            await self.parked.acquire()
            hold.parked = True
        if hold.window:
            self.window.release()
            hold.window = False

    async def unpark(self, hold: _Hold) -> None:
        """Back into the window, to be looked up again."""
        if not hold.window:
            await self.window.acquire()
            hold.window = True
        if hold.parked:
            self.parked.release()
            hold.parked = False

    def leave(self, hold: _Hold) -> None:
        if hold.window:
            self.window.release()
            hold.window = False
        if hold.parked:
            self.parked.release()
            hold.parked = False

    def done(self) -> None:
        self.active -= 1
        if not self.active and not self.ingesting:
            self._idle.set()

    async def idle(self) -> None:
        """Until every admitted domain is done (after the input has ended)."""
        if self.active:
            self._idle.clear()
            await self._idle.wait()

    def gauges(
        self, flow: Flow, client: DnsClient, handshaker: Handshaker, busy: float, down: bool
    ) -> Gauges:
        limit = flow.limit
        if down:
            limit = Limit.RESOLVER_DOWN
        elif self.parked.waiting or (limit is Limit.INPUT and self.parked.used):
            # Admission waits for room among the parked, or all that is
            # left is domains waiting for their mail servers.
            limit = Limit.POLITENESS
        elif limit is not Limit.INPUT and busy >= _CPU_BOUND:
            limit = Limit.CPU
        resolve = _percentiles(self.resolve_times)
        handshake = _percentiles(self.handshake_times)
        return Gauges(
            domains=self.window.used,
            domain_window=self.window.size,
            queries=client.in_flight + client.waiting,
            query_window=client.max_in_flight,
            parked=self.parked.used,
            connections=handshaker.open_connections,
            resolve_p50=resolve[0],
            resolve_p90=resolve[1],
            handshake_p50=handshake[0],
            handshake_p90=handshake[1],
            query_p50=flow.query_median,
            limit=limit.value,
            retrying=self.retrying,
        )


def _percentiles(samples: deque[float]) -> tuple[float, float]:
    if not samples:
        return 0.0, 0.0
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[len(ordered) * 9 // 10]


def shard_of(domain: str, count: int) -> int:
    """Stable across runs and machines (unlike hash()): blake2b of the name."""
    return name_key(domain) % count


@contextlib.contextmanager
def collector_for_scan(young: int = 20_000) -> Iterator[None]:
    """The cyclic garbage collector tuned for a scan, restored afterwards.

    Every domain allocates a few dozen containers (observation, resolution,
    results, rows) that live for a second or so in the queues and then die by
    reference counting. With CPython's default young threshold (700) they
    outlive two young collections, reach the old generation and, by dying
    there, keep triggering full collections that traverse every live object:
    on the 100,000-domain testbed that was a quarter of the scan's CPU, about
    0.1 ms per domain. A young threshold of ``young`` lets them die young, and
    freezing what exists before the scan (modules, pyarrow, cryptography)
    keeps it out of every traversal. Cyclic garbage still gets collected: at
    most ``young`` new objects wait for a collection.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class Pipeline:
    """One scan in one process (one shard of the input when ``shard`` is set)."""

    def __init__(
        self,
        config: ScanConfig,
        *,
        worker: int = 0,
        shard: Shard | None = None,
        resumed: Resumed | None = None,
        policy: ContactPolicy | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        self.shard = shard if shard is not None else config.shard
        self.resumed = resumed if resumed is not None else Resumed()
        # Whom the handshaker may contact: from the config (its --exclude
        # file read) unless the caller already built it from the same config.
        self.policy = policy if policy is not None else contact_policy(config)
        self.progress = Progress()
        self._stop = asyncio.Event()
        self.lost: ResolverLost | None = None  # set when the resolver stayed down
        # Keys of the admitted domains, for scanning duplicates once (a few
        # bytes per domain: see scanner.ingest.seen for the false-duplicate odds).
        self._seen = KeySet()
        self._pool = CertPool(config.cert_pool_size)
        self._now_override = (
            dt.datetime.fromisoformat(config.now_override) if config.now_override else None
        )

    def stop(self) -> None:
        """Admit no more domains; what is in flight finishes and is written."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> PartWriter:
        config = self.config
        writer = PartWriter(
            config.output, self.worker, first_part=self.resumed.next_part.get(self.worker, 0)
        )
        q_match: asyncio.Queue[Observation] = asyncio.Queue(config.queue_size)
        q_out: asyncio.Queue[DomainResult] = asyncio.Queue(config.queue_size)
        try:
            with collector_for_scan():
                await self._run(writer, q_match, q_out)
        finally:
            # Rows in the buffer are finished domains: keep them even when
            # the scan is cancelled (a second SIGINT).
            writer.flush()
            self.progress.written = writer.written
        if self.lost is not None:
            raise self.lost
        return writer

    async def _run(
        self,
        writer: PartWriter,
        q_match: asyncio.Queue[Observation],
        q_out: asyncio.Queue[DomainResult],
    ) -> None:
        config = self.config
        controller = FlowController(self._flow_settings())
        async with (
            DnsClient(config.resolver_settings) as client,
            self._handshaker() as handshaker,
        ):
            discoverer = Discoverer(client, max_mx=config.max_mx, cache_size=config.host_cache_size)
            watchdog = Watchdog(
                client,
                client.settings.servers,
                config.secure_probe,
                config.health_settings,
                need_ad=not config.allow_nonvalidating,
                on_recovered=discoverer.forget_transient,
            )
            flight = _Flight(
                window=Window(controller.flow.domains),
                parked=Window(config.max_parked),
                controller=controller,
            )
            client.set_max_in_flight(controller.flow.queries)
            async with asyncio.TaskGroup() as group:
                output = group.create_task(self._output(q_out, writer))
                matcher = group.create_task(self._match(q_match, q_out))
                watch = group.create_task(watchdog.watch())
                control = group.create_task(self._control(flight, client, handshaker, watchdog))

                def start(work: Observation) -> None:
                    flight.active += 1
                    group.create_task(
                        self._domain(work, flight, discoverer, handshaker, watchdog, q_match)
                    )

                await self._ingest(flight, start, q_out, watchdog)
                flight.ingesting = False
                await flight.idle()
                # Each domain is in q_match before it leaves the flight, and
                # the matcher hands on before task_done: joining the queues
                # in order drains the rest.
                await q_match.join()
                await q_out.join()
                watchdog.close()
                await watch
                for task in (control, matcher, output):
                    task.cancel()

    def _flow_settings(self) -> FlowSettings:
        config = self.config
        return FlowSettings(
            # Every process admits its own shard at its share of the rate.
            rate=config.rate / config.workers,
            min_domains=config.min_domains_in_flight,
            max_domains=config.max_domains_in_flight,
            min_queries=config.min_queries_in_flight,
            max_queries=config.max_queries_in_flight,
        )

    @contextlib.asynccontextmanager
    async def _handshaker(self) -> AsyncIterator[Handshaker]:
        handshaker = Handshaker(
            self.config.session_settings,
            self.config.polite_settings,
            client_context(),
            policy=self.policy,
        )
        try:
            yield handshaker
        finally:
            await handshaker.aclose()

    # -- ingest ------------------------------------------------------------------

    async def _ingest(
        self,
        flight: _Flight,
        start: Callable[[Observation], None],
        q_out: asyncio.Queue[DomainResult],
        watchdog: Watchdog,
    ) -> None:
        bucket = TokenBucket(self.config.rate / self.config.workers)
        names = read_names(self.config.input)
        try:
            while not self._stop.is_set():
                chunk = await asyncio.to_thread(_take, names, _READ_CHUNK)
                if not chunk:
                    break
                for item in chunk:
                    self.progress.read += 1
                    if self._stop.is_set():
                        break
                    work = self._admit(item)
                    if isinstance(work, DomainResult):
                        await q_out.put(work)
                    elif work is not None:
                        try:
                            await watchdog.up()  # nothing is admitted during an outage
                        except ResolverLost:
                            break
                        await bucket.take()
                        await flight.window.acquire()
                        work.started = time.monotonic()
                        self.progress.admitted += 1
                        start(work)
        finally:
            names.close()

    def _admit(self, item: InputName) -> Observation | DomainResult | None:
        domain = item.result.domain
        if domain is None:
            if item.line in self.resumed.error_lines or not self._mine(name_key(item.raw)):
                self.progress.skipped += 1
                return None
            return self._input_error(item)
        key = name_key(domain)  # one digest gives the shard and the dedupe key
        if not self._mine(key) or key in self.resumed.domains or not self._seen.add(key):
            self.progress.skipped += 1
            return None
        return Observation(item.line, domain, time.monotonic(), self._now())

    def _now(self) -> dt.datetime:
        if self._now_override is not None:
            return self._now_override
        return dt.datetime.now(dt.UTC)

    def _mine(self, key: int) -> bool:
        """Whether the name with this ``name_key`` is in this worker's shard
        (the rule of ``shard_of``)."""
        return self.shard is None or key % self.shard.count == self.shard.index

    def _input_error(self, item: InputName) -> DomainResult:
        return DomainResult(
            domain=item.raw[:300],
            input_line=item.line,
            verdict=DomainVerdict.INPUT_ERROR,
            error=item.result.error or "invalid name",
            mx=None,
            mx_ttl=None,
            hosts=(),
            scanned_at=self._now(),
            duration_ms=0.0,
        )

    # -- one domain, admission to matching --------------------------------------

    async def _domain(
        self,
        work: Observation,
        flight: _Flight,
        discoverer: Discoverer,
        handshaker: Handshaker,
        watchdog: Watchdog,
        q_match: asyncio.Queue[Observation],
    ) -> None:
        hold = _Hold()
        try:
            try:
                await self._resolve(discoverer, work, flight, hold, watchdog)
                if work.targets:
                    await flight.park(hold)
                    handshake_started = time.monotonic()
                    await self._handshake(handshaker, work)
                    flight.handshaken(time.monotonic() - handshake_started)
            except ResolverLost:
                return  # not written: ``--resume`` looks it up again
            except Exception as exc:  # a bug, not a remote party: keep it on the row
                work.error = f"internal error: {exc!r} at {traceback.format_exc(limit=-1)}"
                work.targets = ()
            flight.leave(hold)
            await q_match.put(work)
        finally:
            flight.leave(hold)
            flight.done()

    async def _resolve(
        self,
        discoverer: Discoverer,
        work: Observation,
        flight: _Flight,
        hold: _Hold,
        watchdog: Watchdog,
    ) -> None:
        """Look the domain up, again while the outcome is transient: after a
        pause, up to ``retries`` times; at once, and not counted, when an
        outage of the resolver spoilt the lookup."""
        config = self.config
        refresh = False
        while True:
            started = time.monotonic()
            resolution = await discoverer.domain(work.domain, refresh=refresh)
            finished = time.monotonic()
            if not resolution.transient:
                break
            await watchdog.judged(finished)
            spoilt = watchdog.overlaps(started, finished)
            if not spoilt and work.attempts > config.retries:
                break
            await flight.park(hold)
            flight.retrying += 1
            try:
                if not spoilt:
                    polite = config.polite_settings
                    await asyncio.sleep(
                        backoff(config.retry_backoff, work.attempts, polite.max_wait)
                    )
                    work.attempts += 1
                await watchdog.up()
            finally:
                flight.retrying -= 1
            await flight.unpark(hold)
            self.progress.retried += 1
            refresh = True
        flight.resolved(finished - started)
        work.resolution = resolution
        self.progress.resolved += 1
        config = self.config
        work.targets = tls_targets(work, config.starttls, config.max_addresses)
        if not work.targets:
            self.progress.handshaken += 1  # nothing to do in the handshake stage

    async def _handshake(self, handshaker: Handshaker, work: Observation) -> None:
        targets = work.targets
        if len(targets) == 1:  # the common case: no task group, no tasks
            (target,) = targets
            session = await handshaker.handshake(target.address, target.sni, target.names)
            work.sessions = {(target.host, target.address): session}
        else:
            jobs: dict[tuple[str, str], asyncio.Task[SessionResult]] = {}
            async with asyncio.TaskGroup() as group:
                for target in targets:
                    jobs[(target.host, target.address)] = group.create_task(
                        handshaker.handshake(target.address, target.sni, target.names)
                    )
            work.sessions = {key: task.result() for key, task in jobs.items()}
        self.progress.sessions += len(targets)
        self.progress.handshaken += 1

    # -- flow control ------------------------------------------------------------

    async def _control(
        self, flight: _Flight, client: DnsClient, handshaker: Handshaker, watchdog: Watchdog
    ) -> None:
        """Every interval: what the resolver did, the windows resized, the gauges."""
        wall, cpu = time.monotonic(), time.process_time()
        while True:
            await asyncio.sleep(_CONTROL_INTERVAL)
            latencies, retried, gave_up = client.take_latencies()
            controller = flight.controller
            # Which answers needed a retry does not matter, only how many.
            for index, latency in enumerate(latencies):
                controller.query_done(latency, timed_out=False, retried=index < retried)
            for _ in range(gave_up):
                controller.query_done(0.0, timed_out=True)
            flow = controller.update(in_flight=flight.window.used, admitting=flight.ingesting)
            flight.window.resize(flow.domains)
            client.set_max_in_flight(flow.queries)
            now_wall, now_cpu = time.monotonic(), time.process_time()
            busy = (now_cpu - cpu) / (now_wall - wall) if now_wall > wall else 0.0
            wall, cpu = now_wall, now_cpu
            down = watchdog.state is Health.DOWN
            self.progress.gauges = flight.gauges(flow, client, handshaker, busy, down)
            self.progress.outages = watchdog.health.outages
            if watchdog.lost is not None and self.lost is None:
                self.lost = watchdog.lost
                self.stop()

    # -- match -------------------------------------------------------------------

    async def _match(
        self, inbox: asyncio.Queue[Observation], q_out: asyncio.Queue[DomainResult]
    ) -> None:
        while True:
            batch = [await inbox.get()]
            while len(batch) < self.config.match_batch and not inbox.empty():
                batch.append(inbox.get_nowait())
            try:
                results = self._conclude(batch)
            except Exception as exc:  # a matcher bug must not lose the batch
                for work in batch:
                    work.error = f"internal error in matching: {exc!r}"
                results = [self._finish(obs, {}) for obs in batch]
            for result in results:
                await q_out.put(result)
            for _ in batch:
                inbox.task_done()

    def _conclude(self, batch: list[Observation]) -> list[DomainResult]:
        """Match every TLS session of the batch in one pass, then assemble results."""
        keyed = [(i, key, job) for i, obs in enumerate(batch)
                 for key, job in match_jobs(obs, self.config.max_addresses)]  # fmt: skip
        matches = match_batch([job for _, _, job in keyed], self._now(), pool=self._pool)
        per_domain: list[dict[tuple[str, str], MatchResult]] = [{} for _ in batch]
        for (index, key, _job), match in zip(keyed, matches, strict=True):
            per_domain[index][key] = match
        return [self._finish(obs, found) for obs, found in zip(batch, per_domain, strict=True)]

    def _finish(
        self, obs: Observation, matches: dict[tuple[str, str], MatchResult]
    ) -> DomainResult:
        return conclude(
            obs,
            matches,
            tested=self.config.starttls is not StartTlsMode.NONE,
            max_addresses=self.config.max_addresses,
        )

    # -- output ------------------------------------------------------------------

    async def _output(self, inbox: asyncio.Queue[DomainResult], writer: PartWriter) -> None:
        with contextlib.ExitStack() as stack:
            log = None
            if self.config.log_json is not None:
                log = stack.enter_context(
                    self.config.log_json.open("a", encoding="utf-8", buffering=1)
                )
            await self._write(inbox, writer, log)

    async def _write(
        self, inbox: asyncio.Queue[DomainResult], writer: PartWriter, log: TextIO | None
    ) -> None:
        config = self.config
        progress = self.progress
        last = time.monotonic()
        while True:
            result: DomainResult | None = None
            try:
                # Take what is there without awaiting (asyncio.wait_for would
                # make a task per row); wait only when the queue is empty, and
                # at most a second, so a part that is due is written even when
                # no domain finishes.
                result = inbox.get_nowait()
            except asyncio.QueueEmpty:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        result = await inbox.get()
            if result is not None:
                writer.add(domain_row(result))
                if log is not None:
                    log.write(domain_json(result) + "\n")
                progress.concluded += 1
                progress.transient += result.transient
                progress.verdicts[str(result.verdict) if result.verdict else "unknown"] += 1
            rows = len(writer)
            if rows and (
                rows >= config.part_rows
                or writer.nbytes >= config.part_bytes
                or time.monotonic() - last >= config.part_seconds
            ):
                await asyncio.to_thread(writer.flush)
                last = time.monotonic()
                progress.written = writer.written
            if result is not None:
                # Done only now: the pipeline's join must not return (and
                # run() flush the rest) while this part is being written.
                inbox.task_done()


def _take(names: Iterator[InputName], count: int) -> list[InputName]:
    chunk: list[InputName] = []
    for item in names:
        chunk.append(item)
        if len(chunk) >= count:
            break
    return chunk
