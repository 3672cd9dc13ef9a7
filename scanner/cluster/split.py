"""The input of a cluster scan, split into tasks by the stable hash of each domain.

A task is a file ``<dataset>/_tasks/task-<i>.txt`` of ``LINE<TAB>NAME``
lines: the input's line number and the name as the input had it, which the
task normalises again exactly as a single-machine scan would. A name goes to
task ``key % tasks`` where ``key`` is scanner.names.key of its normal form
(of the raw text for a line that does not normalise), so every spelling of a
domain meets in one task, whose pipeline scans it once. The split is written
once: ``split.json`` is removed first and written last, after every task
file was published whole (scanner.output.store), so a resumed scan reuses a
split that is whole and redoes one that is not.
Folders whose names start with ``_`` are not part of a Parquet dataset for
pyarrow, DuckDB or polars, so the split lives beside the parts harmlessly.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Generator
from dataclasses import dataclass

from scanner.ingest.normalise import normalise
from scanner.ingest.reader import InputName, read_names
from scanner.output.store import DatasetStore
from scanner.seen import name_key

TASKS_DIR = "_tasks"
SPLIT_FILE = "split.json"
# Domains per task when the input is large. A task drains its window of
# domains in flight before its worker takes the next, and each starts with
# cold caches: larger tasks pay both less often. A lost worker's task is not
# redone whole (the rerun goes on from its last part), so size costs little.
TASK_DOMAINS = 1_000_000
TASKS_PER_WORKER = 1  # at least: every worker thread has a task from the start


@dataclass(frozen=True, slots=True)
class Split:
    """A written split: how many tasks, and the names of their files."""

    tasks: int
    lines: int  # input lines read

    def name(self, task: int) -> str:
        return f"{TASKS_DIR}/task-{task:04d}.txt"


def task_count(lines: int | None, workers: int) -> int:
    """Tasks for an input of ``lines`` (None: unknown) on ``workers`` workers."""
    by_size = math.ceil(lines / TASK_DOMAINS) if lines else 1
    return max(TASKS_PER_WORKER * workers, by_size)


def task_of(item: InputName, tasks: int) -> int:
    domain = item.result.domain
    return name_key(domain if domain is not None else item.raw) % tasks


def read_split(store: DatasetStore) -> Split | None:
    """The split a previous run of this scan wrote, or None if there is none whole."""
    try:
        raw = json.loads(store.read_bytes(f"{TASKS_DIR}/{SPLIT_FILE}"))
        split = Split(int(raw["tasks"]), int(raw["lines"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    present = set(store.list(TASKS_DIR))
    if split.tasks < 1 or not all(split.name(i) in present for i in range(split.tasks)):
        return None
    return split


def write_split(source: str, store: DatasetStore, tasks: int) -> Split:
    """Read ``source`` once and write its names into ``tasks`` task files."""
    marker = f"{TASKS_DIR}/{SPLIT_FILE}"
    store.remove(marker)
    shape = Split(tasks, 0)
    lines = 0
    with contextlib.ExitStack() as stack:
        # Published together when the block ends, none if reading fails.
        handles = [stack.enter_context(store.open_write(shape.name(i))) for i in range(tasks)]
        for item in read_names(source):
            handles[task_of(item, tasks)].write(f"{item.line}\t{item.raw}\n".encode())
            lines += 1
    store.write_bytes(marker, json.dumps({"tasks": tasks, "lines": lines}).encode() + b"\n")
    return Split(tasks, lines)


def task_names(store: DatasetStore, name: str) -> Generator[InputName, None, None]:
    """A task file's names, numbered by their input lines, normalised again."""
    with store.open_read(name) as raw, io.TextIOWrapper(raw, "utf-8", newline="\n") as handle:
        for text in handle:
            number, _, raw_name = text.rstrip("\n").partition("\t")
            yield InputName(int(number), raw_name, normalise(raw_name))
