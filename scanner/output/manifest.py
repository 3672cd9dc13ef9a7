"""The manifest of a scan dataset (``manifest.json``): what scanned, when, how
it ended and what it wrote, as one typed value with one JSON form.

Everything that writes or reads a manifest goes through :class:`Manifest`:
the scanner (rewritten as the scan progresses and when it ends), the
synthetic datasets (testbed.synth), the analysis (analysis.load, the report
and the notebook) and the benchmarks. Writing has one form; reading is
tolerant: a key that is missing or not understood becomes None, and the keys
of the scanner's first manifests (``version``, ``started``, ``ended``) are
read too, so datasets written before this form still show their version and
times.

The file is replaced atomically (temporary file, then rename). When that
fails for want of space (the very failure a scan may have to record), the
existing file is rewritten in place instead: its blocks are already
allocated, so a manifest that fits in them needs none, and the compact JSON
form is tried last because it is the shortest.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scanner.output.schema import SCHEMA_VERSION
from scanner.output.store import Where, as_store

MANIFEST = "manifest.json"
SCANNER = "danescan"


class ManifestError(ValueError):
    """A manifest.json that is not a JSON object (or cannot be read)."""


class ScanStatus(StrEnum):
    RUNNING = "running"  # still being written, or the process died without a word
    COMPLETE = "complete"  # the input was scanned to the end
    INTERRUPTED = "interrupted"  # SIGINT or SIGTERM; --resume continues
    FAILED = "failed"  # see ``failure``; --resume continues once it is fixed


@dataclass(frozen=True, slots=True)
class Counts:
    """Domains and rows of the scan so far (of this run, not of earlier ones
    a resumed scan continues); None when the manifest does not say."""

    read: int | None = None  # input lines read
    skipped: int | None = None  # duplicates, other shards', done by an earlier run
    domains: int | None = None  # concluded
    written: int | None = None  # rows in part files
    tls_sessions: int | None = None
    verdicts: Mapping[str, int] = field(default_factory=dict)  # domain verdict -> rows
    transient: int | None = None  # rows written whose outcome is still transient
    retried: int | None = None  # lookups done again after a transient outcome
    outages: int | None = None  # outages of the resolver the scan waited out
    # What the stages did, summed over workers: "dns" (datagrams sent,
    # timeouts, TCP retries...), "handshakes" (SMTP connections started,
    # retries, blocked...), "matching" (certificates parsed, digests...),
    # "policy_fetches" (MTA-STS policies asked, requests, retries, blocked).
    work: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "skipped": self.skipped,
            "domains": self.domains,
            "written": self.written,
            "tls_sessions": self.tls_sessions,
            "verdicts": dict(sorted(self.verdicts.items())),
            "transient": self.transient,
            "retried": self.retried,
            "outages": self.outages,
            "work": {stage: dict(sorted(n.items())) for stage, n in sorted(self.work.items())},
        }

    @classmethod
    def from_dict(cls, raw: object) -> Counts:
        if not isinstance(raw, Mapping):
            return cls()
        verdicts = raw.get("verdicts")
        work = raw.get("work")
        return cls(
            read=_int(raw.get("read")),
            skipped=_int(raw.get("skipped")),
            domains=_int(raw.get("domains")),
            written=_int(raw.get("written")),
            tls_sessions=_int(raw.get("tls_sessions")),
            verdicts=_ints(verdicts),
            transient=_int(raw.get("transient")),
            retried=_int(raw.get("retried")),
            outages=_int(raw.get("outages")),
            work=(
                {str(stage): _ints(n) for stage, n in work.items()}
                if isinstance(work, Mapping)
                else {}
            ),
        )


@dataclass(frozen=True, slots=True)
class Cluster:
    """The Dask cluster a scan ran on (scanner.cluster); None for one machine."""

    scheduler: str
    workers: tuple[str, ...] = ()  # every worker that ran a task, by address
    tasks: int = 0  # the input's split
    attempts: int = 0  # task runs heard of, reruns after a lost worker included
    lost_workers: int = 0  # workers that left while running a task

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "workers": list(self.workers),
            "tasks": self.tasks,
            "attempts": self.attempts,
            "lost_workers": self.lost_workers,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Cluster | None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("scheduler"), str):
            return None
        workers = raw.get("workers")
        return cls(
            scheduler=raw["scheduler"],
            workers=tuple(str(w) for w in workers) if isinstance(workers, list) else (),
            tasks=_int(raw.get("tasks")) or 0,
            attempts=_int(raw.get("attempts")) or 0,
            lost_workers=_int(raw.get("lost_workers")) or 0,
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """A scan's own description, written next to its parts."""

    scanner_version: str | None
    status: ScanStatus | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None = None  # None while running
    failure: str | None = None  # why, when (and only when) the scan failed
    scanner: str | None = SCANNER
    host: str | None = None
    resolvers: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    schema_version: str | None = SCHEMA_VERSION
    cluster: Cluster | None = None

    def __post_init__(self) -> None:
        if (self.status is ScanStatus.FAILED) != bool(self.failure):
            raise ValueError("a failure reason goes with status failed, and only with it")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "scanner": self.scanner,
            "scanner_version": self.scanner_version,
            "status": None if self.status is None else self.status.value,
            "failure": self.failure,
            "host": self.host,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "resolvers": list(self.resolvers),
            "config": dict(self.config),
            "counts": self.counts.to_dict(),
            "cluster": None if self.cluster is None else self.cluster.to_dict(),
        }

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest.json is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ManifestError("manifest.json is not a JSON object")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Manifest:
        def text(*keys: str) -> str | None:
            for key in keys:  # the current key first, then the first manifests' name
                value = raw.get(key)
                if value is not None:
                    return str(value)
            return None

        status = _status(raw.get("status"))
        failure = text("failure")
        if status is ScanStatus.FAILED and not failure:
            failure = "unknown"
        elif status is not ScanStatus.FAILED:
            failure = None
        resolvers = raw.get("resolvers")
        config = raw.get("config")
        return cls(
            scanner_version=text("scanner_version", "version"),
            status=status,
            started_at=_time(raw.get("started_at", raw.get("started"))),
            finished_at=_time(raw.get("finished_at", raw.get("ended"))),
            failure=failure,
            scanner=text("scanner"),
            host=text("host"),
            resolvers=tuple(str(r) for r in resolvers) if isinstance(resolvers, list) else (),
            config=dict(config) if isinstance(config, Mapping) else {},
            counts=Counts.from_dict(raw.get("counts")),
            schema_version=text("schema_version"),
            cluster=Cluster.from_dict(raw.get("cluster")),
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ints(raw: object) -> dict[str, int]:
    """A mapping of names to counts; what is not a count is left out."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): n for k, v in raw.items() if (n := _int(v)) is not None}


def _status(value: object) -> ScanStatus | None:
    try:
        return ScanStatus(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- the file ----------------------------------------------------------------------


def write_manifest(where: Where, manifest: Manifest) -> None:
    """Replace the dataset's manifest.json; rewrite it in place when the disk is full."""
    store = as_store(where)
    body = manifest.to_json().encode()
    try:
        store.write_bytes(MANIFEST, body)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not store.exists(MANIFEST):
            raise
        compact = json.dumps(manifest.to_dict(), sort_keys=True, default=str).encode() + b"\n"
        try:
            store.rewrite_in_place(MANIFEST, body)
        except OSError as again:
            if again.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            store.rewrite_in_place(MANIFEST, compact)


def read_manifest(where: Where) -> Manifest | None:
    """The dataset's manifest; None when there is none."""
    store = as_store(where)
    try:
        text = store.read_bytes(MANIFEST)
    except FileNotFoundError:
        return None
    except OSError as exc:
        where = store.describe(MANIFEST)
        raise ManifestError(f"{where} is not readable: {exc.strerror or exc}") from None
    return Manifest.from_json(text)
