"""How a scan that stopped says why: one line per failure, a bug left alone."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

from scanner.ingest.reader import InputError
from scanner.resolve.health import ResolverLost
from scanner.run import _exit_reason, _workers_failed, failure_reason


def test_disk_full_names_the_file() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/r/.part-000-000001.parquet.tmp")
    assert failure_reason(exc) == (
        "disk full writing to /r/.part-000-000001.parquet.tmp: No space left on device"
    )
    unnamed = OSError(errno.ENOSPC, "No space left on device")  # as pyarrow raises it
    assert failure_reason(unnamed) == "disk full: No space left on device"
    assert failure_reason(unnamed, Path("/r")) == "disk full writing to /r: No space left on device"


def test_the_pipeline_task_group_says_what_its_first_real_failure_says() -> None:
    group = BaseExceptionGroup(
        "x", [asyncio.CancelledError(), ExceptionGroup("y", [ResolverLost("down for 300 s")])]
    )
    assert failure_reason(group) == "resolver lost: down for 300 s"
    assert failure_reason(InputError("cannot read\nlist.txt")) == "cannot read list.txt"


def test_a_bug_is_no_failure_reason() -> None:
    assert failure_reason(KeyError("x")) is None
    assert failure_reason(ExceptionGroup("x", [TypeError("bad")])) is None


def test_failed_workers_in_one_line() -> None:
    assert _workers_failed({1: "disk full: No space left on device"}) == (
        "worker 1 failed: disk full: No space left on device"
    )
    assert _workers_failed({2: _exit_reason(-9), 0: _exit_reason(3)}) == (
        "worker 0 failed: exited with status 3 (and 1 more worker)"
    )
    assert _exit_reason(-9) == "killed by signal SIGKILL"
