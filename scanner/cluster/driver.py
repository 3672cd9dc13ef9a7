"""The client side of a cluster scan: connect, split, run the tasks, watch
them, and end as a single-machine scan ends (scanner.run: one manifest, one
exit status, the same progress display).

Tasks are sent a few at a time (one per worker thread, plus one waiting per
worker), each with its share of ``--rate`` among the threads the cluster
has when it is sent, so the cluster as a whole keeps to the rate and a
worker that joins takes the next task. The scheduler reschedules a task
whose worker died; a task whose route found no owner (scanner.cluster.route)
is sent again by the driver. A task that fails for any other reason (the
resolver lost, a full disk) fails the scan, as a worker process does on
one machine; the parts written stay, and ``--resume`` goes on.

Losing the scheduler ends the scan as failed: Dask workers do not reconnect
to a new scheduler, and the driver cannot tell which tasks finished, so it
says so and ``--resume`` (against a new scheduler) finishes the scan from
the parts on disk.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Future, LocalCluster, wait
from distributed.client import FuturesCancelledError as CancelledError
from distributed.security import Security

from scanner.cluster import certs
from scanner.cluster.route import OwnerLost
from scanner.cluster.service import PLUGIN, PROGRESS, ScanService
from scanner.cluster.split import Split, read_split, task_count, write_split
from scanner.cluster.task import TaskReport, TaskSpec, run_task
from scanner.config import ScanConfig
from scanner.handshake.contact import ContactPolicy
from scanner.output.manifest import Cluster, ScanStatus
from scanner.output.store import open_store
from scanner.output.writer import Resumed
from scanner.progress import ProgressView, Snapshot
from scanner.run import Ending, ScanError, failure_reason
from scanner.seen import KeySet

# Dask's settings for a survey's processes; remote ones take them from
# the environment (DASK_CONFIG=this folder), as the README says.
DASK_CONFIG = Path(__file__).parent / "dask-config"
_POLL = 0.5  # seconds between looks at the tasks (and progress updates)
_SCHEDULER_PATIENCE = 30.0  # seconds without the scheduler before the scan fails
_RESENDS = 3  # times a task whose route lost every owner is sent again


@dataclass(slots=True)
class _Progress:
    """Each task's latest snapshot, from its events; finished tasks' final ones."""

    latest: dict[int, tuple[str, Snapshot]] = field(default_factory=dict)
    final: dict[int, Snapshot] = field(default_factory=dict)
    attempts: set[tuple[int, str]] = field(default_factory=set)  # (task, attempt) heard of

    def event(self, event: tuple[float, Any]) -> None:
        """A task's progress event (called on the client's event loop thread)."""
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("task") in self.final:
            return
        snapshot = pickle.loads(msg["snapshot"])
        if isinstance(snapshot, Snapshot):
            task, attempt = int(msg["task"]), str(msg.get("attempt"))
            self.latest[task] = (attempt, snapshot)
            self.attempts.add((task, attempt))

    def finish(self, report: TaskReport) -> None:
        self.final[report.index] = report.snapshot
        self.attempts.add((report.index, report.attempt))
        self.latest.pop(report.index, None)

    def total(self, elapsed: float, total: int | None) -> Snapshot:
        result = Snapshot(total=total)
        for snap in self.final.values():
            result = result + replace(snap, gauges=Snapshot().gauges)
        for _, snap in list(self.latest.values()):
            result = result + snap
        return replace(result, elapsed=elapsed)


@contextlib.contextmanager
def connect(config: ScanConfig) -> Iterator[tuple[Client, str]]:
    """A client of the cluster ``config.cluster`` names (and the cluster,
    when it is a local one), with TLS both ways."""
    assert config.cluster is not None
    quiet = {"silence_logs": logging.ERROR}
    # The scan says in one line what went wrong with the cluster; Dask's own
    # log lines on this side would only repeat it, at length.
    for name in [*logging.root.manager.loggerDict, "distributed"]:
        if name.split(".")[0] == "distributed":
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    with contextlib.ExitStack() as stack:
        # The survey's Dask settings (dask-config/danescan.yaml), here and in
        # the processes of a local cluster, which take this process's.
        stack.enter_context(dask.config.set(dask_settings()))
        if config.cluster.startswith("local:"):
            security = Security.temporary()
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=int(config.cluster.removeprefix("local:")),
                    threads_per_worker=1,
                    processes=True,
                    protocol="tls",
                    host="127.0.0.1",
                    security=security,
                    dashboard_address=None,
                    **quiet,
                )
            )
            address = cluster.scheduler_address
        else:
            assert config.cluster_certs is not None
            try:
                security = certs.security(config.cluster_certs)
            except certs.CertificateError as exc:
                raise ScanError(str(exc)) from None
            address = config.cluster
        try:
            client = stack.enter_context(Client(address, security=security, timeout=30))
        except (OSError, TimeoutError) as exc:
            raise ScanError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        yield client, address


def dask_settings() -> dict[str, Any]:
    """The settings of ``DASK_CONFIG``, as the dotted keys ``dask.config.set`` takes."""
    collected = dask.config.collect(paths=[str(DASK_CONFIG)], env={})

    def dotted(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from dotted(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return dict(dotted(collected))


def run_cluster(
    config: ScanConfig,
    resumed: Resumed,
    policy: ContactPolicy,
    view: ProgressView,
    total: int | None,
) -> tuple[Ending, Cluster]:
    """The scan on the cluster; how it ended and what ran it."""
    with connect(config) as (client, address):
        workers = _workers(client)
        if not workers:
            raise ScanError(f"the Dask scheduler at {address} has no workers")
        split = _split(config, sum(workers.values()), total)
        client.register_plugin(ScanService(config, policy), name=PLUGIN)
        run = _Run(config, client, address, split, resumed, view, total)
        client.subscribe_topic(PROGRESS, run.progress.event)
        try:
            ending = run.go()
            if ending.status is not ScanStatus.FAILED or run.client.status == "running":
                with contextlib.suppress(Exception):
                    owners = handshake_counts(client)
                    ending.snapshot.counts.handshakes.update(
                        {f"owner_{name}": n for name, n in owners.items()}
                    )
        finally:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(PROGRESS)
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(PLUGIN)
        return ending, run.cluster()


def _workers(client: Client) -> dict[str, int]:
    """The cluster's workers and their threads."""
    info = client.scheduler_info(n_workers=-1)
    return {addr: int(w.get("nthreads", 1)) for addr, w in info.get("workers", {}).items()}


def _split(config: ScanConfig, threads: int, lines: int | None) -> Split:
    """The split of a resumed scan, else a new one of ``lines`` input lines
    (counted once, by run.py, for the progress display)."""
    store = open_store(config.output)
    if config.resume and (existing := read_split(store)) is not None:
        return existing
    tasks = config.tasks or task_count(lines, threads)
    return write_split(config.input, store, tasks)


class _Run:
    """One run of the tasks (see the module docstring)."""

    def __init__(
        self,
        config: ScanConfig,
        client: Client,
        address: str,
        split: Split,
        resumed: Resumed,
        view: ProgressView,
        total: int | None,
    ) -> None:
        self.config = config
        self.client = client
        self.address = address
        self.split = split
        self.view = view
        self.total = total
        self.progress = _Progress()
        self.started = time.monotonic()
        self.done_keys = _by_task(resumed.domains, split.tasks)
        self.resumed = resumed
        self.ran_on: set[str] = set()
        self.sent = 0
        self.owners: set[str] = set(_workers(client))
        self.lost_workers = 0
        self.interrupted = False

    def cluster(self) -> Cluster:
        return Cluster(
            scheduler=self.address,
            workers=tuple(sorted(self.ran_on)),
            tasks=self.split.tasks,
            attempts=len(self.progress.attempts),
            lost_workers=self.lost_workers,
        )

    def go(self) -> Ending:
        waiting = list(range(self.split.tasks))
        resends = dict.fromkeys(waiting, 0)
        running: dict[Future[TaskReport], int] = {}
        known = set(_workers(self.client))

        signals = 0

        def stop(_signum: int, _frame: object) -> None:
            nonlocal signals  # the loop acts on it: no Dask call in a handler
            signals += 1

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while waiting or running:
                if signals and not self.interrupted:
                    # The tasks admit no more domains, finish those in
                    # flight and write them; the rest waits for --resume.
                    self.interrupted = True
                    with contextlib.suppress(Exception):
                        self.client.run(_stop_tasks)
                if signals > 1:  # a second signal: stop now, keep what is written
                    for future in running:
                        future.cancel()
                    break
                workers = self._live_workers()
                if workers is None:
                    return self._lost_scheduler()
                self.lost_workers += len(known - set(workers))
                known = set(workers)
                slots = sum(workers.values()) + len(workers)
                while waiting and not self.interrupted and len(running) < slots:
                    index = waiting.pop(0)
                    running[self._send(index, workers)] = index
                if not running:
                    break
                try:
                    finished, _ = wait(list(running), timeout=_POLL, return_when="FIRST_COMPLETED")
                except TimeoutError:  # none finished within the poll
                    finished = set()
                except CancelledError:  # the scheduler dropped them: it is gone
                    return self._lost_scheduler()
                for future in finished:
                    index = running.pop(future)
                    failure = self._collect(future, index)
                    # Released, or Dask recomputes a finished task whose
                    # result was on a worker that died.
                    future.release()
                    if failure is OwnerLost and resends[index] < _RESENDS:
                        resends[index] += 1
                        waiting.insert(0, index)
                    elif failure is not None:
                        for other in running:
                            other.cancel()
                        self.client.run(_stop_tasks)
                        reason = (
                            failure if isinstance(failure, str) else "no worker owned an address"
                        )
                        return self._ending(ScanStatus.FAILED, f"task {index} failed: {reason}")
                self.view.update(self._snapshot())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._live_workers() is None:
            return self._lost_scheduler()
        return self._ending(ScanStatus.INTERRUPTED if self.interrupted else ScanStatus.COMPLETE)

    def _send(self, index: int, workers: dict[str, int]) -> Future[TaskReport]:
        threads = sum(workers.values())
        # The owners: the workers of the scan's start still there, so that
        # an address moves only when its owner leaves, never to a worker
        # that joins (tasks sent earlier would not know it).
        self.owners = self.owners.intersection(workers) or set(workers)
        spec = TaskSpec(
            index=index,
            name=self.split.name(index),
            rate=self.config.rate / threads,
            workers=tuple(sorted(self.owners)),
            first_part=self.resumed.next_part.get(index, 0),
            done=self.done_keys.get(index, KeySet()),
            error_lines=frozenset(self.resumed.error_lines),
        )
        self.sent += 1
        return self.client.submit(
            run_task, self.config, spec, key=f"danescan-task-{index}-{self.sent}", pure=False
        )

    def _collect(self, future: Future[TaskReport], index: int) -> str | type[OwnerLost] | None:
        """Record a finished task; None, or why it failed."""
        if future.status == "finished":
            report = future.result()
            assert isinstance(report, TaskReport)
            self.progress.finish(report)
            self.ran_on.add(report.worker)
            return None
        if future.status == "cancelled":
            return "cancelled (the scheduler lost it)"
        exc = future.exception()
        if isinstance(exc, OwnerLost):
            return OwnerLost
        return failure_reason(exc) or f"internal error: {type(exc).__name__}: {exc}"

    def _live_workers(self) -> dict[str, int] | None:
        """The workers now; None once the scheduler has been away too long."""
        deadline = time.monotonic() + _SCHEDULER_PATIENCE
        while True:
            if self.client.status == "running":
                try:
                    return _workers(self.client)
                except (OSError, TimeoutError):
                    pass
            if self.client.status in ("closed", "closing") or time.monotonic() > deadline:
                return None
            time.sleep(_POLL)

    def _snapshot(self) -> Snapshot:
        return self.progress.total(time.monotonic() - self.started, self.total)

    def _lost_scheduler(self) -> Ending:
        return self._ending(ScanStatus.FAILED, f"lost the Dask scheduler at {self.address}")

    def _ending(self, status: ScanStatus, failure: str | None = None) -> Ending:
        return Ending(self._snapshot(), status, failure)


def _by_task(keys: KeySet, tasks: int) -> dict[int, KeySet]:
    """The done domains of an earlier run, by the task each belongs to."""
    result: dict[int, KeySet] = {}
    for key in keys:
        result.setdefault(key % tasks, KeySet()).add(key)
    return result


def _stop_tasks(dask_worker: Any) -> int:
    """On every worker: ask its running tasks to stop admitting domains."""
    service = dask_worker.plugins.get(PLUGIN)
    return service.stop_tasks() if isinstance(service, ScanService) else 0


def handshake_counts(client: Client) -> dict[str, int]:
    """The owners' Handshaker counters, summed over the workers."""
    per_worker = client.run(_handshake_counts)
    summed: dict[str, int] = {}
    for counts in per_worker.values():
        for name, value in counts.items():
            summed[name] = summed.get(name, 0) + value
    return summed


def _handshake_counts(dask_worker: Any) -> dict[str, int]:
    service = dask_worker.plugins.get(PLUGIN)
    return service.handshake_counts() if isinstance(service, ScanService) else {}
