"""The manifest: one JSON form written, every earlier form read, and a
manifest that still lands on a disk with no space left."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import pytest

from scanner.output import store as store_module
from scanner.output.manifest import (
    MANIFEST,
    Counts,
    Manifest,
    ManifestError,
    ScanStatus,
    read_manifest,
    write_manifest,
)
from scanner.output.schema import SCHEMA_VERSION

STARTED = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
ENDED = dt.datetime(2026, 11, 28, 12, 30, 5, tzinfo=dt.UTC)


def failed() -> Manifest:
    return Manifest(
        scanner_version="1.2.3",
        status=ScanStatus.FAILED,
        started_at=STARTED,
        finished_at=ENDED,
        failure="disk full: No space left on device",
        host="scanner.example",
        resolvers=("127.0.0.1:53",),
        config={"rate": 100.0, "output": "results/x"},
        counts=Counts(read=10, skipped=1, domains=9, written=8, tls_sessions=3,
                      verdicts={"no_dane": 8}, transient=2,
                      work={"dns": {"sent": 40, "timeouts": 1}, "handshakes": {"sessions": 3}}),
    )  # fmt: skip


def test_json_round_trip(tmp_path: Path) -> None:
    manifest = failed()
    assert Manifest.from_json(manifest.to_json()) == manifest
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["scanner"] == "danescan"
    assert raw["status"] == "failed"
    assert raw["started_at"] == "2026-11-28T12:00:00+00:00"
    assert raw["counts"]["transient"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failure_reason_goes_with_status_failed_only() -> None:
    with pytest.raises(ValueError, match="failure reason"):
        Manifest("1", ScanStatus.COMPLETE, STARTED, failure="why")
    with pytest.raises(ValueError, match="failure reason"):
        Manifest("1", ScanStatus.FAILED, STARTED)


def test_the_first_scanner_manifests_are_read() -> None:
    old = {
        "scanner": "danescan", "version": "0.1.0", "status": "complete",
        "started": "2026-11-28T12:00:00+00:00", "ended": "2026-11-28T12:30:05+00:00",
        "resolvers": ["127.0.0.1:53"], "schema_version": "1",
        "counts": {"read": 3, "domains": 3, "verdicts": {"no_dane": 3}},
    }  # fmt: skip
    manifest = Manifest.from_json(json.dumps(old))
    assert manifest.scanner_version == "0.1.0"
    assert (manifest.started_at, manifest.finished_at) == (STARTED, ENDED)
    assert manifest.status is ScanStatus.COMPLETE
    assert manifest.counts == Counts(read=3, domains=3, verdicts={"no_dane": 3})


def test_reading_is_tolerant_missing_or_odd_keys_are_none() -> None:
    manifest = Manifest.from_json(
        '{"status": "paused", "started_at": "yesterday", "counts": {"read": "many"}}'
    )
    assert manifest.status is None
    assert manifest.started_at is None
    assert manifest.scanner_version is None
    assert manifest.schema_version is None
    assert manifest.counts.read is None
    odd = Manifest.from_json('{"counts": {"work": {"dns": {"sent": 4, "x": "y"}, "z": 1}}}')
    assert odd.counts.work == {"dns": {"sent": 4}, "z": {}}
    assert Manifest.from_json('{"status": "failed"}').failure == "unknown"
    with pytest.raises(ManifestError):
        Manifest.from_json("[1, 2]")
    with pytest.raises(ManifestError):
        Manifest.from_json("{")


def test_no_manifest_is_none(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None


def no_space_for_new_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that takes the bytes of a new (temporary) file into the page
    cache and then has no room to keep them: fsync fails, as on a full disk.
    A file already there can still be rewritten in place."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)


def test_on_a_full_disk_the_manifest_is_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = Manifest("1.2.3", ScanStatus.RUNNING, STARTED, config={"rate": 100.0})
    write_manifest(tmp_path, running)
    no_space_for_new_files(monkeypatch)
    write_manifest(tmp_path, failed())
    assert read_manifest(tmp_path) == failed()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST]  # ...removed


def test_other_errors_and_a_first_manifest_on_a_full_disk_are_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_space_for_new_files(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        write_manifest(tmp_path, failed())  # nothing to rewrite in place
    assert not list(tmp_path.iterdir())
