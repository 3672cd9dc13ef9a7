"""One process's scan, its stages wired: ingest -> resolve -> handshake -> match -> output.

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
(scanner.handshake.handshaker) make work that many domains share happen once.

Nothing a remote party does raises out of a stage: the stages return outcome
values, and a bug that does raise is recorded on that domain's row (verdict
``internal_error``, the exception text as ``error``) rather than stopping the
scan.

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
import dataclasses
import datetime as dt
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TextIO

from scanner.assemble import Observation, assemble, match_jobs, tls_targets
from scanner.collector import collector_for_scan
from scanner.config import ScanConfig, Shard, StartTlsMode
from scanner.flight import Flight, Hold
from scanner.flow import FlowController, FlowSettings
from scanner.handshake.contact import ContactPolicy, contact_policy
from scanner.handshake.handshaker import Handshaker, Handshakes
from scanner.handshake.polite import backoff
from scanner.handshake.session import SessionResult, client_context
from scanner.ingest.reader import InputName, read_names
from scanner.lost import ScanLost
from scanner.mailpolicy import fetch_wanted
from scanner.match.batch import CertPool, MatchJob, match_batch
from scanner.match.outcome import MatchResult
from scanner.mtasts.fetch import Fetcher, Requester, fetcher_for
from scanner.mtasts.pkix import load_trust_store
from scanner.output.jsonlog import domain_json
from scanner.output.rows import domain_row
from scanner.output.writer import PartWriter, Resumed
from scanner.policyfetch import fetch_policy
from scanner.progress import Counters, Gauges, Snapshot
from scanner.ratelimit import TokenBucket, Window
from scanner.resolve.client import DnsClient
from scanner.resolve.discover import Discoverer
from scanner.resolve.health import Health, ResolverLost
from scanner.resolve.watchdog import Watchdog
from scanner.results import DomainResult
from scanner.seen import KeySet, name_key
from scanner.status import DomainVerdict

_READ_CHUNK = 2000
# How often the flow control looks at what happened and resizes the windows.
_CONTROL_INTERVAL = 0.5


# Where a pipeline's names come from (the input file by default) and where
# its handshakes go (a Handshaker of its own by default).
NameSource = Callable[[], Generator[InputName, None, None]]
HandshakeStage = Callable[[], AbstractAsyncContextManager[Handshakes]]


class Pipeline:
    """One scan in one process (one shard of the input when ``shard`` is set).

    ``worker`` numbers its part files; ``rate`` is its share of ``--rate``
    (the config's divided by its workers unless given). A cluster task
    (scanner.cluster) passes its own ``names``, ``handshakes`` and
    ``fetch_requester`` (where its MTA-STS policy requests go).
    """

    def __init__(
        self,
        config: ScanConfig,
        *,
        worker: int = 0,
        shard: Shard | None = None,
        resumed: Resumed | None = None,
        policy: ContactPolicy | None = None,
        rate: float | None = None,
        names: NameSource | None = None,
        handshakes: HandshakeStage | None = None,
        fetch_requester: Requester | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        self.rate = rate if rate is not None else config.rate / config.workers
        self._names = names if names is not None else lambda: read_names(config.input)
        self._handshakes = handshakes if handshakes is not None else self._handshaker
        self.shard = shard if shard is not None else config.shard
        self.resumed = resumed if resumed is not None else Resumed()
        # Whom the handshaker may contact: from the config (its --exclude
        # file read) unless the caller already built it from the same config.
        self.policy = policy if policy is not None else contact_policy(config)
        self.counters = Counters()
        self.gauges = Gauges()  # set by the flow control
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        self.lost: ScanLost | None = None  # the resolver stayed down, a cluster owner left
        # Keys of the admitted domains, for scanning duplicates once (a few
        # bytes per domain: see scanner.seen for the false-duplicate odds).
        self._seen = KeySet()
        self._pool = CertPool(config.cert_pool_size)
        self._fetcher: Fetcher | None = None  # the run's, once it starts
        self._fetch_requester = fetch_requester
        self._now_override = (
            dt.datetime.fromisoformat(config.now_override) if config.now_override else None
        )
        # The roots MTA-STS hosts are judged by (RFC 8461 s4.2): the system's and --pkix-ca's.
        self._trust = load_trust_store(config.pkix_ca) if config.mta_sts else None

    def stop(self) -> None:
        """Admit no more domains; what is in flight finishes and is written."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def snapshot(self, total: int | None = None) -> Snapshot:
        elapsed = time.monotonic() - self._started
        return Snapshot(self.counters.copy(), elapsed, total, self.gauges)

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
            self.counters.written = writer.written
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
            self._handshakes() as handshaker,
        ):
            discoverer = Discoverer(
                client,
                max_mx=config.max_mx,
                cache_size=config.host_cache_size,
                policies=config.mta_sts,
            )
            fetcher = self._fetcher = (
                fetcher_for(config, self.policy, self._fetch_requester) if config.mta_sts else None
            )
            watchdog = Watchdog(
                client,
                client.settings.servers,
                config.secure_probe,
                config.health_settings,
                need_ad=not config.allow_nonvalidating,
                on_recovered=discoverer.forget_transient,
            )
            flight = Flight(
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
                        self._domain(
                            work, flight, discoverer, handshaker, fetcher, watchdog, q_match
                        )
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
            self._count_work(client, handshaker)

    def _flow_settings(self) -> FlowSettings:
        config = self.config
        return FlowSettings(
            # Every process admits its own shard at its share of the rate.
            rate=self.rate,
            min_domains=config.min_domains_in_flight,
            max_domains=config.max_domains_in_flight,
            min_queries=config.min_queries_in_flight,
            max_queries=config.max_queries_in_flight,
        )

    @contextlib.asynccontextmanager
    async def _handshaker(self) -> AsyncIterator[Handshakes]:
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
        flight: Flight,
        start: Callable[[Observation], None],
        q_out: asyncio.Queue[DomainResult],
        watchdog: Watchdog,
    ) -> None:
        bucket = TokenBucket(self.rate)
        names = self._names()
        try:
            while not self._stop.is_set():
                chunk = await asyncio.to_thread(_take, names, _READ_CHUNK)
                if not chunk:
                    break
                for item in chunk:
                    self.counters.read += 1
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
                        self.counters.admitted += 1
                        start(work)
        finally:
            names.close()

    def _admit(self, item: InputName) -> Observation | DomainResult | None:
        domain = item.result.domain
        if domain is None:
            if item.line in self.resumed.error_lines or not self._mine(name_key(item.raw)):
                self.counters.skipped += 1
                return None
            return self._input_error(item)
        key = name_key(domain)  # one digest gives the shard and the dedupe key
        if not self._mine(key) or key in self.resumed.domains or not self._seen.add(key):
            self.counters.skipped += 1
            return None
        return Observation(item.line, domain, time.monotonic(), self._now())

    def _now(self) -> dt.datetime:
        if self._now_override is not None:
            return self._now_override
        return dt.datetime.now(dt.UTC)

    def _mine(self, key: int) -> bool:
        """Whether the name with this ``name_key`` is in this worker's shard."""
        return self.shard is None or self.shard.owns(key)

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
        flight: Flight,
        discoverer: Discoverer,
        handshaker: Handshakes,
        fetcher: Fetcher | None,
        watchdog: Watchdog,
        q_match: asyncio.Queue[Observation],
    ) -> None:
        hold = Hold()
        policy: asyncio.Task[None] | None = None
        try:
            try:
                await self._resolve(discoverer, work, flight, hold, watchdog)
                if fetcher is not None and work.policies and fetch_wanted(work.policies.sts.record):
                    # Beside the handshakes: a web server, not a mail server.
                    policy = asyncio.create_task(fetch_policy(fetcher, discoverer, work))
                if work.targets:
                    # Out of the window: meeting mail servers costs the resolver nothing.
                    await flight.park(hold)
                handshake_started = time.monotonic()
                await self._handshake(handshaker, work)
                if work.targets:
                    flight.handshaken(time.monotonic() - handshake_started)
                if policy is not None:
                    await policy
            except ScanLost as exc:
                if self.lost is None:  # the scan ends, as it does when the watchdog says so
                    self.lost = exc
                    self.stop()
                return  # not written: ``--resume`` looks it up again
            except Exception as exc:  # a bug, not a remote party: keep it on the row
                work.error = f"internal error: {exc!r} at {traceback.format_exc(limit=-1)}"
                work.targets = ()
            flight.leave(hold)
            await q_match.put(work)
        finally:
            if policy is not None and not policy.done():
                policy.cancel()
            flight.leave(hold)
            flight.done()

    async def _resolve(
        self,
        discoverer: Discoverer,
        work: Observation,
        flight: Flight,
        hold: Hold,
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
            self.counters.retried += 1
            refresh = True
        flight.resolved(finished - started)
        work.resolved(resolution, config.max_addresses)
        self.counters.resolved += 1
        work.targets = tls_targets(work, config.starttls)

    async def _handshake(self, handshaker: Handshakes, work: Observation) -> None:
        """The handshake stage: a session per target; most domains have none."""
        targets = work.targets
        if len(targets) == 1:  # the common case: no task group, no tasks
            (target,) = targets
            session = await handshaker.handshake(target.address, target.sni, target.names)
            work.sessions = {(target.host, target.address): session}
        elif targets:
            jobs: dict[tuple[str, str], asyncio.Task[SessionResult]] = {}
            try:
                async with asyncio.TaskGroup() as group:
                    for target in targets:
                        jobs[(target.host, target.address)] = group.create_task(
                            handshaker.handshake(target.address, target.sni, target.names)
                        )
            except* ScanLost as lost:  # one loss, not a bug: as with a single target
                raise lost.exceptions[0] from None
            work.sessions = {key: task.result() for key, task in jobs.items()}
        self.counters.sessions += len(targets)
        self.counters.handshaken += 1

    # -- flow control ------------------------------------------------------------

    async def _control(
        self, flight: Flight, client: DnsClient, handshaker: Handshakes, watchdog: Watchdog
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
            self.gauges = flight.gauges(flow, client, handshaker, busy, down)
            self.counters.outages = watchdog.health.outages
            self._count_work(client, handshaker)
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
                results = self._match_and_assemble(batch)
            except Exception as exc:  # a matcher bug must not lose the batch
                for work in batch:
                    work.error = f"internal error in matching: {exc!r}"
                results = [self._assemble(obs, {}) for obs in batch]
            for result in results:
                await q_out.put(result)
            for _ in batch:
                inbox.task_done()

    def _match_and_assemble(self, batch: list[Observation]) -> list[DomainResult]:
        """Match every TLS session of the batch in one pass, then assemble results."""
        keyed = [(i, key, job) for i, obs in enumerate(batch)
                 for key, job in match_jobs(obs)]  # fmt: skip
        jobs = [job for _, _, job in keyed]
        now = self._now()
        per_domain = _by_domain(len(batch), keyed, match_batch(jobs, now, pool=self._pool))
        days = self.config.days_ahead
        if days is None:
            return [
                self._assemble(obs, found) for obs, found in zip(batch, per_domain, strict=True)
            ]
        later = now + dt.timedelta(days=days)
        ahead = _by_domain(len(batch), keyed, match_batch(jobs, later, pool=self._pool))
        return [
            self._assemble(obs, found, later)
            for obs, found, later in zip(batch, per_domain, ahead, strict=True)
        ]

    def _assemble(
        self,
        obs: Observation,
        matches: dict[tuple[str, str], MatchResult],
        ahead: dict[tuple[str, str], MatchResult] | None = None,
    ) -> DomainResult:
        tested = self.config.starttls is not StartTlsMode.NONE
        return assemble(
            obs,
            matches,
            tested=tested,
            now=time.monotonic(),
            pool=self._pool,
            trust=self._trust,
            days_ahead=self.config.days_ahead,
            matches_ahead=ahead,
        )

    def _count_work(self, client: DnsClient, handshaker: Handshakes) -> None:
        """What the stages did on the wire and in the matcher (their own
        counters, since the process started) for the manifest."""
        self.counters.dns = Counter(dataclasses.asdict(client.stats))
        self.counters.handshakes = Counter(dataclasses.asdict(handshaker.stats))
        self.counters.matching = Counter(dataclasses.asdict(self._pool.stats))
        if self._fetcher is not None:
            self.counters.policy_fetches = Counter(dataclasses.asdict(self._fetcher.stats))

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
        counters = self.counters
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
                counters.concluded += 1
                counters.transient += result.transient
                counters.verdicts[str(result.verdict)] += 1
            rows = len(writer)
            if rows and (
                rows >= config.part_rows
                or writer.nbytes >= config.part_bytes
                or time.monotonic() - last >= config.part_seconds
            ):
                await asyncio.to_thread(writer.flush)
                last = time.monotonic()
                counters.written = writer.written
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


def _by_domain(
    count: int,
    keyed: list[tuple[int, tuple[str, str], MatchJob]],
    matches: Sequence[MatchResult],
) -> list[dict[tuple[str, str], MatchResult]]:
    """The batch's matches, per domain by (host, address)."""
    per_domain: list[dict[tuple[str, str], MatchResult]] = [{} for _ in range(count)]
    for (index, key, _job), match in zip(keyed, matches, strict=True):
        per_domain[index][key] = match
    return per_domain
