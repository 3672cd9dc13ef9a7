"""Running a scan: the dataset folder, the resolver, the workers, signals,
progress and the manifest. The pipeline itself is scanner.pipeline.

Exit status: 0 the input was scanned to the end; 1 the scan could not run
(unreadable input, a resolver that does not validate, a dataset folder in
use); 130 interrupted by SIGINT or SIGTERM (the manifest says "interrupted"
and ``--resume`` continues where the parts end).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import multiprocessing as mp
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import uvloop

from scanner import __version__
from scanner.config import ScanConfig, Shard
from scanner.handshake.exclude import Exclusions, parse_exclusions
from scanner.ingest.reader import InputError
from scanner.output.writer import DatasetError, Resumed, part_files, read_done, write_manifest
from scanner.pipeline import Pipeline
from scanner.progress import ProgressView, Snapshot
from scanner.resolve.managed import ResolverError, managed_unbound, probe

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class ScanError(Exception):
    """The scan cannot run; a one-line message for the user."""


def load_exclusions(path: Path | None) -> Exclusions | None:
    if path is None:
        return None
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ScanError(f"cannot read --exclude {path}: {exc.strerror}") from None
    parsed = parse_exclusions(lines)
    if parsed.bad_lines:
        bad = parsed.bad_lines[0]
        raise ScanError(
            f"{path}:{bad.line_no}: {bad.reason} ({len(parsed.bad_lines)} bad lines in all)"
        )
    return parsed.exclusions


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
        config.output.mkdir(parents=True, exist_ok=True)
        probe = config.output / ".danescan-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ScanError(f"cannot write to {config.output}: {exc.strerror or exc}") from None
    existing = part_files(config.output)
    if existing and not config.resume:
        raise ScanError(
            f"{config.output} already holds {len(existing)} part files: "
            "pass --resume to continue that scan, or choose another -o"
        )
    try:
        return read_done(config.output) if config.resume else Resumed()
    except DatasetError as exc:
        raise ScanError(str(exc)) from None


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
    config: ScanConfig, status: str, started: dt.datetime, snap: Snapshot
) -> dict[str, Any]:
    return {
        "scanner": "danescan",
        "version": __version__,
        "status": status,
        "host": socket.getfqdn(),
        "started": started.isoformat(),
        "ended": dt.datetime.now(dt.UTC).isoformat() if status != "running" else None,
        "resolvers": list(config.resolvers),
        "config": {
            k: (str(v) if isinstance(v, Path | Shard) else v)
            for k, v in dataclasses.asdict(config).items()
        },
        "counts": {
            "read": snap.read,
            "skipped": snap.skipped,
            "domains": snap.concluded,
            "written": snap.written,
            "tls_sessions": snap.sessions,
            "verdicts": dict(snap.verdicts),
        },
    }


def run_scan(config: ScanConfig) -> int:
    started = dt.datetime.now(dt.UTC)
    total = count_lines(config.input)
    view = ProgressView(quiet=config.quiet)
    try:
        check_input(config.input)
        resumed = prepare_output(config)
        exclusions = load_exclusions(config.exclude)
        with resolver_for(config) as config:
            write_manifest(config.output, _manifest(config, "running", started, Snapshot()))
            with view:
                if config.workers == 1:
                    snap, interrupted = _run_single(config, resumed, exclusions, view, total)
                else:
                    snap, interrupted = _run_workers(config, resumed, view, total)
    except (ScanError, ResolverError, InputError, OSError) as exc:
        print(f"scan: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except BaseExceptionGroup as group:  # from the pipeline's task group
        failures = group.subgroup((ScanError, InputError, OSError))
        if failures is None or failures.exceptions != group.exceptions:
            raise
        print(f"scan: {_one_line(failures.exceptions[0])}", file=sys.stderr)
        return EXIT_FAILED
    status = "interrupted" if interrupted else "complete"
    write_manifest(config.output, _manifest(config, status, started, snap))
    view.summary(snap, f"danescan: {status}, {snap.concluded:,} domains -> {config.output}")
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"I/O error{where}: {exc.strerror or exc}"
    return str(exc)


def _run_single(
    config: ScanConfig,
    resumed: Resumed,
    exclusions: Exclusions | None,
    view: ProgressView,
    total: int | None,
) -> tuple[Snapshot, bool]:
    pipeline = Pipeline(config, resumed=resumed, exclusions=exclusions)

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
        ticker = asyncio.create_task(_tick(lambda: view.update(pipeline.progress.snapshot(total))))
        try:
            await pipeline.run()
        except asyncio.CancelledError:
            return True
        finally:
            ticker.cancel()
        return pipeline.stopping

    interrupted = uvloop.run(main())
    return pipeline.progress.snapshot(total), interrupted


async def _tick(update: Any, interval: float = 0.5) -> None:
    while True:
        update()
        await asyncio.sleep(interval)


# -- several processes, one shard each -------------------------------------------


def _worker_main(config: ScanConfig, index: int, resumed: Resumed, reports: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; SIGTERM stops
    exclusions = load_exclusions(config.exclude)
    shard = Shard(index, config.workers)
    pipeline = Pipeline(config, worker=index, shard=shard, resumed=resumed, exclusions=exclusions)

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, pipeline.stop)

        async def report() -> None:
            while True:
                reports.put((index, pipeline.progress.snapshot(), False))
                await asyncio.sleep(0.5)

        ticker = asyncio.create_task(report())
        try:
            await pipeline.run()
        finally:
            ticker.cancel()
            reports.put((index, pipeline.progress.snapshot(), True))

    uvloop.run(main())


def _run_workers(
    config: ScanConfig, resumed: Resumed, view: ProgressView, total: int | None
) -> tuple[Snapshot, bool]:
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
    interrupted = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while len(finished) < len(processes):
            try:
                index, snap, done = reports.get(timeout=0.5)
            except Empty:
                if all(not p.is_alive() for p in processes):
                    break
                continue
            latest[index] = snap
            if done:
                finished.add(index)
            view.update(_sum(latest.values(), total))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in processes:
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed and not interrupted:
        raise ScanError(f"{len(failed)} worker processes failed (exit codes {failed})")
    return _sum(latest.values(), total), interrupted


def _sum(snaps: Any, total: int | None) -> Snapshot:
    result = Snapshot(total=total)
    for snap in snaps:
        result = result + snap
    return result
