"""Running a scan: the dataset folder, the resolver, the workers, signals,
progress and the manifest. One process's pipeline of stages is
scanner.pipeline.

Exit status and manifest say the same (scanner.output.manifest.ScanStatus):
0 complete, the input was scanned to the end; 1 failed, with the reason in
one line on stderr and in the manifest (the scan could not start: unreadable
input, a resolver that does not validate, a dataset folder in use; or it
stopped: disk full, resolver lost, a worker process failed); 130 interrupted
by SIGINT or SIGTERM. After a failure or an interruption ``--resume``
continues where the parts end, losing and repeating nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import multiprocessing as mp
import os
import signal
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import uvloop

from scanner import __version__, fdlimit
from scanner.config import ScanConfig, Shard, StartTlsMode
from scanner.handshake.contact import ContactPolicy, ContactPolicyError, contact_policy
from scanner.ingest.reader import InputError
from scanner.output.manifest import Cluster, Counts, Manifest, ScanStatus, write_manifest
from scanner.output.store import open_store
from scanner.output.writer import (
    Resumed,
    UnreadablePart,
    check_schema,
    drop_transient,
    part_files,
    read_done,
)
from scanner.pipeline import Pipeline
from scanner.progress import ProgressView, Snapshot
from scanner.resolve.health import ResolverLost
from scanner.resolve.managed import ResolverError, managed_unbound, probe
from scanner.terminal import printable

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class ScanError(Exception):
    """The scan cannot run; a one-line message for the user."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How a scan that started ended: what it did, and why it stopped."""

    snapshot: Snapshot
    status: ScanStatus
    failure: str | None = None  # one line, when status is failed
    # An unexpected exception (a bug): raised once the manifest records the
    # failure, so that its traceback is what the user reads.
    bug: Exception | None = None


# Failures that are facts about the scan's surroundings, told in one line;
# anything else is a bug, and keeps its traceback (after the manifest has
# recorded it).
_EXPECTED = (ScanError, ResolverError, ResolverLost, InputError, OSError)


def load_policy(config: ScanConfig) -> ContactPolicy:
    """Whom the scan may contact (scanner.handshake.contact), built before
    anything starts so that a bad --exclude file stops the scan at once."""
    try:
        return contact_policy(config)
    except ContactPolicyError as exc:
        raise ScanError(str(exc)) from None


def check_input(source: str) -> None:
    """Fail early, before any resolver starts, on an input that cannot be read."""
    if source == "-":
        return
    path = Path(source)
    if path.is_dir():
        raise ScanError(f"{source} is a directory, not a domain list")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ScanError(f"cannot read {source}: {exc.strerror}") from None


def prepare_output(config: ScanConfig) -> Resumed:
    try:
        store = open_store(config.output)
    except (ImportError, ValueError) as exc:
        raise ScanError(f"cannot open {config.output}: {exc}") from None
    try:
        store.prepare()
    except OSError as exc:
        raise ScanError(f"cannot write to {config.output}: {exc.strerror or exc}") from None
    existing = part_files(store)
    if existing and not config.resume:
        raise ScanError(
            f"{config.output} already holds {len(existing)} part files: "
            "pass --resume to continue that scan, or choose another -o"
        )
    if not config.resume:
        return Resumed()
    try:
        check_schema(store)  # before --retry-transient rewrites anything
        if config.retry_transient:
            drop_transient(store)
        return read_done(store)
    except UnreadablePart as exc:
        raise ScanError(str(exc)) from None


def fit_open_files(config: ScanConfig) -> ScanConfig:
    """The config with no more connections than open files allow
    (scanner.fdlimit), decided once, before the managed Unbound and the
    workers start (they inherit the raised limit), and recorded in the
    manifest's config."""
    budget = fdlimit.file_budget()
    dns_sockets = max(1, len(config.resolvers)) * config.resolver_settings.sockets
    cap = fdlimit.connection_cap(budget, dns_sockets=dns_sockets, wanted=config.max_connections)
    if cap >= config.max_connections:
        return config
    needs_connections = config.starttls is not StartTlsMode.NONE
    if cap < 1 and needs_connections:
        raise ScanError(
            f"open files are limited to {budget.limit} ({budget.open} open), which leaves "
            "no room for SMTP connections: raise the limit (ulimit -n) or pass --starttls none"
        )
    if needs_connections and not config.quiet:
        print(
            f"scan: open files are limited to {budget.limit} (ulimit -n): "
            f"at most {cap} SMTP connections at a time instead of {config.max_connections}",
            file=sys.stderr,
        )
    return dataclasses.replace(config, max_connections=max(1, cap))


def count_lines(source: str) -> int | None:
    """Lines of a plain input file, for the ETA; None for stdin or compressed input."""
    if source == "-":
        return None
    try:
        with open(source, "rb") as handle:
            if handle.peek(4)[:2] in (b"\x1f\x8b", b"BZ", b"\xfd7", b"\x28\xb5"):
                return None
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None


@contextlib.contextmanager
def resolver_for(config: ScanConfig) -> Iterator[ScanConfig]:
    """The config with a resolver that validates (a managed one if none was given)."""
    with contextlib.ExitStack() as stack:
        if not config.resolvers:
            address = stack.enter_context(managed_unbound(config.trust_anchor, config.root_hints))
            config = dataclasses.replace(config, resolvers=(address,))
        for server in config.resolvers:
            result = uvloop.run(probe(server, config.secure_probe, config.bogus_probe))
            if not result.validating and not config.allow_nonvalidating:
                raise ScanError(
                    f"resolver {server} does not validate DNSSEC ({result.detail}); "
                    "DANE results through it would be meaningless. "
                    "Use a validating resolver or pass --allow-nonvalidating"
                )
        yield config


def _manifest(
    config: ScanConfig,
    started: dt.datetime,
    snap: Snapshot,
    status: ScanStatus,
    failure: str | None = None,
    cluster: Cluster | None = None,
) -> Manifest:
    return Manifest(
        cluster=cluster,
        scanner_version=__version__,
        status=status,
        started_at=started,
        finished_at=None if status is ScanStatus.RUNNING else dt.datetime.now(dt.UTC),
        failure=failure,
        host=socket.getfqdn(),
        resolvers=tuple(config.resolvers),
        config={
            k: (str(v) if isinstance(v, Path | Shard) else v)
            for k, v in dataclasses.asdict(config).items()
        },
        counts=Counts(
            read=snap.counts.read,
            skipped=snap.counts.skipped,
            domains=snap.counts.concluded,
            written=snap.counts.written,
            tls_sessions=snap.counts.sessions,
            verdicts=dict(snap.counts.verdicts),
            transient=snap.counts.transient,
            retried=snap.counts.retried,
            outages=snap.counts.outages,
            work={
                "dns": dict(snap.counts.dns),
                "handshakes": dict(snap.counts.handshakes),
                "matching": dict(snap.counts.matching),
                "policy_fetches": dict(snap.counts.policy_fetches),
            },
        ),
    )


def run_scan(config: ScanConfig) -> int:
    started = dt.datetime.now(dt.UTC)
    total = count_lines(config.input)
    view = ProgressView(quiet=config.quiet)
    cluster: Cluster | None = None
    try:
        check_input(config.input)
        resumed = prepare_output(config)
        policy = load_policy(config)
        config = fit_open_files(config)
        with resolver_for(config) as config:
            running = _manifest(config, started, Snapshot(), ScanStatus.RUNNING)
            write_manifest(config.output, running)
            with view:
                if config.cluster is not None:
                    ending, cluster = _run_cluster(config, resumed, policy, view, total)
                elif config.workers == 1:
                    ending = _run_single(config, resumed, policy, view, total)
                else:
                    ending = _run_workers(config, resumed, view, total)
    except Exception as exc:  # the scan did not start (or its resolver did not stop)
        reason = failure_reason(exc)
        if reason is None:
            raise
        print(f"scan: {reason}", file=sys.stderr)
        return EXIT_FAILED
    final = _manifest(config, started, ending.snapshot, ending.status, ending.failure, cluster)
    try:
        write_manifest(config.output, final)
    except OSError as exc:
        print(f"scan: {ending.status}, but the manifest: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    if ending.bug is not None:
        raise ending.bug
    if ending.status is ScanStatus.FAILED:
        print(f"scan: {ending.failure} (--resume continues the scan)", file=sys.stderr)
        return EXIT_FAILED
    snap = ending.snapshot
    done = snap.counts.concluded
    view.summary(snap, f"danescan: {ending.status}, {done:,} domains -> {config.output}")
    return EXIT_INTERRUPTED if ending.status is ScanStatus.INTERRUPTED else EXIT_OK


def failure_reason(exc: BaseException, where: str | None = None) -> str | None:
    """The one line that says why the scan failed; None for an unexpected
    exception (a bug). An exception group (the pipeline's task group) says
    what its first real failure says. ``where``: the folder an I/O error
    without a file name happened in (a part written through pyarrow)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in _leaves(exc):
            if not isinstance(inner, asyncio.CancelledError):
                return failure_reason(inner, where)
        return None
    if not isinstance(exc, _EXPECTED):
        return None
    if isinstance(exc, ResolverLost):
        return f"resolver lost: {exc}"
    return _one_line(exc, where)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for inner in group.exceptions:
        if isinstance(inner, BaseExceptionGroup):
            yield from _leaves(inner)
        else:
            yield inner


def _one_line(exc: BaseException, folder: str | None = None) -> str:
    if isinstance(exc, OSError):
        name = exc.filename or folder
        where = f" {name}" if name else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full{' writing to' + where if where else ''}: {exc.strerror or exc}"
        return printable(f"I/O error{where}: {exc.strerror or exc}")
    # An error may quote a remote's words (a resolver's, a mail server's):
    # the line goes to a terminal, so its controls are escaped.
    return printable(" ".join(str(exc).split())) or type(exc).__name__


def _bug(exc: BaseException) -> str:
    return printable(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")


def _run_single(
    config: ScanConfig,
    resumed: Resumed,
    policy: ContactPolicy,
    view: ProgressView,
    total: int | None,
) -> Ending:
    pipeline = Pipeline(config, resumed=resumed, policy=policy)

    async def main() -> bool:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if pipeline.stopping:
                task.cancel()  # a second signal: stop now, keep what is finished
            else:
                pipeline.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        ticker = asyncio.create_task(_tick(lambda: view.update(pipeline.snapshot(total))))
        try:
            await pipeline.run()
        except asyncio.CancelledError:
            return True
        finally:
            ticker.cancel()
        return pipeline.stopping

    try:
        interrupted = uvloop.run(main())
    except Exception as exc:
        return _failed(exc, pipeline.snapshot(total), config.output)
    status = ScanStatus.INTERRUPTED if interrupted else ScanStatus.COMPLETE
    return Ending(pipeline.snapshot(total), status)


def _failed(exc: Exception, snap: Snapshot, folder: str) -> Ending:
    reason = failure_reason(exc, folder)
    if reason is None:
        return Ending(snap, ScanStatus.FAILED, _bug(exc), bug=exc)
    return Ending(snap, ScanStatus.FAILED, reason)


async def _tick(update: Any, interval: float = 0.5) -> None:
    while True:
        update()
        await asyncio.sleep(interval)


def _run_cluster(
    config: ScanConfig,
    resumed: Resumed,
    policy: ContactPolicy,
    view: ProgressView,
    total: int | None,
) -> tuple[Ending, Cluster]:
    try:
        from scanner.cluster.driver import run_cluster
    except ImportError as exc:
        raise ScanError(
            f"--cluster needs the cluster extra (pip install 'danescan[cluster]'): {exc}"
        ) from None
    return run_cluster(config, resumed, policy, view, total)


# -- several processes, one shard each -------------------------------------------


@dataclass(frozen=True, slots=True)
class _Report:
    """What a worker process tells the parent, every half second and at its end."""

    index: int
    snapshot: Snapshot
    done: bool = False
    failure: str | None = None  # the one-line reason when the worker failed


def _worker_main(config: ScanConfig, index: int, resumed: Resumed, reports: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops
    shard = Shard(index, config.workers)
    # The policy is built from the config as in the parent, which checked it.
    pipeline = Pipeline(config, worker=index, shard=shard, resumed=resumed)

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, pipeline.stop)

        async def report() -> None:
            while True:
                reports.put(_Report(index, pipeline.snapshot()))
                await asyncio.sleep(0.5)

        ticker = asyncio.create_task(report())
        try:
            await pipeline.run()
        finally:
            ticker.cancel()

    try:
        uvloop.run(main())
    except Exception as exc:
        # The parent writes the manifest and the one line: it needs the
        # reason, which an exit code cannot carry.
        reason = failure_reason(exc, config.output)
        reports.put(_Report(index, pipeline.snapshot(), True, reason or _bug(exc)))
        if reason is None:
            raise  # a bug: its traceback goes to stderr
        sys.exit(EXIT_FAILED)
    reports.put(_Report(index, pipeline.snapshot(), True))


def _run_workers(
    config: ScanConfig, resumed: Resumed, view: ProgressView, total: int | None
) -> Ending:
    context = mp.get_context("spawn")
    reports = context.Queue()
    processes = [
        context.Process(target=_worker_main, args=(config, i, resumed, reports), daemon=False)
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    latest: dict[int, Snapshot] = {}
    finished: set[int] = set()
    failures: dict[int, str] = {}
    interrupted = False

    def stop_all() -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def stop(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        stop_all()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while len(finished) < len(processes):
            try:
                report: _Report = reports.get(timeout=0.5)
            except Empty:
                if all(not p.is_alive() for p in processes):
                    break
                continue
            latest[report.index] = report.snapshot
            if report.done:
                finished.add(report.index)
            if report.failure is not None and report.index not in failures:
                # One worker failed, so the scan has: the others stop and
                # write what they finished, and --resume does the rest.
                failures[report.index] = report.failure
                stop_all()
            view.update(_sum(latest.values(), total))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in processes:
            process.join()
    snap = _sum(latest.values(), total)
    for index, process in enumerate(processes):
        if process.exitcode != 0 and index not in failures:
            failures[index] = _exit_reason(process.exitcode)
    if failures:
        return Ending(snap, ScanStatus.FAILED, _workers_failed(failures))
    return Ending(snap, ScanStatus.INTERRUPTED if interrupted else ScanStatus.COMPLETE)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _workers_failed(failures: dict[int, str]) -> str:
    """One line for the failed workers: the first reason, and how many more."""
    first = min(failures)
    more = len(failures) - 1
    return f"worker {first} failed: {failures[first]}" + (
        f" (and {more} more worker{'s' if more > 1 else ''})" if more else ""
    )


def _sum(snaps: Iterable[Snapshot], total: int | None) -> Snapshot:
    result = Snapshot(total=total)
    for snap in snaps:
        result = result + snap
    return result
