"""One task of a cluster scan, as a Dask worker runs it: the pipeline over
the task's share of the input (scanner.cluster.split), its handshakes and
policy requests routed to their owners (scanner.cluster.route), its rows in
part files named by the task.

A task is idempotent: its parts are ``part-<task>-<n>.parquet`` from
``first_part`` on, each written atomically, and a task run again (its worker
died; the scheduler gave it to another) reads the parts its earlier attempts
wrote and skips their domains. A worker killed at any moment therefore
leaves the dataset as an uninterrupted scan would, once the task is rerun.

Progress goes to the driver as Dask events (``Worker.log_event``), a
pickled Snapshot twice a second; the final one is the task's result.
"""

from __future__ import annotations

import asyncio
import pickle
import uuid
from dataclasses import dataclass, field

import uvloop
from distributed import get_worker

from scanner.cluster.route import Route
from scanner.cluster.service import PLUGIN, PROGRESS, ScanService
from scanner.cluster.split import task_names
from scanner.config import ScanConfig
from scanner.output.store import DatasetStore, open_store
from scanner.output.writer import Resumed, part_files, part_number, read_done
from scanner.pipeline import Pipeline
from scanner.progress import Snapshot
from scanner.seen import KeySet

_REPORT_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the driver tells a task."""

    index: int
    name: str  # the task's file of names, in the dataset
    rate: float  # its share of --rate
    workers: tuple[str, ...]  # the cluster's workers when it was sent: the owners
    first_part: int = 0  # parts below this number are an earlier run's
    done: KeySet = field(default_factory=KeySet)  # its domains an earlier run wrote
    error_lines: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What a finished task returns."""

    index: int
    attempt: str
    worker: str
    snapshot: Snapshot
    stopped: bool  # the driver asked it to stop before its input ended


def run_task(config: ScanConfig, spec: TaskSpec) -> TaskReport:
    """Dask runs this in a worker's task thread."""
    worker = get_worker()
    service = worker.plugins[PLUGIN]
    assert isinstance(service, ScanService)
    attempt = uuid.uuid4().hex[:12]
    store = open_store(config.output)
    route = Route(
        service,
        spec.workers,
        cache_size=config.session_cache_size,
        port=config.session_settings.port,
    )
    pipeline = Pipeline(
        config,
        worker=spec.index,
        resumed=_resumed(store, spec),
        policy=service.policy,
        rate=spec.rate,
        names=lambda: task_names(store, spec.name),
        handshakes=route.stage,
        fetch_requester=route.fetch_attempt,
    )

    def report(snapshot: Snapshot, final: bool = False) -> None:
        event = {"task": spec.index, "attempt": attempt, "final": final}
        worker.log_event(PROGRESS, {**event, "snapshot": pickle.dumps(snapshot)})

    async def main() -> None:
        service.started(spec.index, asyncio.get_running_loop(), pipeline)
        report(pipeline.snapshot())  # at once: the driver hears of every attempt

        async def tick() -> None:
            while True:
                await asyncio.sleep(_REPORT_INTERVAL)
                report(pipeline.snapshot())

        ticker = asyncio.create_task(tick())
        try:
            await pipeline.run()
        finally:
            ticker.cancel()
            service.finished(spec.index)

    uvloop.run(main())
    final = pipeline.snapshot()
    report(final, final=True)
    return TaskReport(spec.index, attempt, worker.address, final, pipeline.stopping)


def _resumed(dataset: DatasetStore, spec: TaskSpec) -> Resumed:
    """What is done of this task: by earlier runs (the driver read those)
    and by earlier attempts of this run (read here, from the task's parts)."""
    own = [
        name
        for name in part_files(dataset)
        if (number := part_number(name))[0] == spec.index and number[1] >= spec.first_part
    ]
    done = read_done(dataset, own)
    for key in spec.done:
        done.domains.add(key)
    done.error_lines |= spec.error_lines
    done.next_part[spec.index] = max(done.next_part.get(spec.index, 0), spec.first_part)
    return done
