"""How a scan of the simulated internet ends, and what its manifest says.

A complete scan's manifest carries the real scanner version and times, and
analysis.load, ``scan report`` and the notebook show them. A disk that fills
(a small tmpfs) ends the scan with exit 1, one line on stderr, a manifest
"failed" with the reason and no temporary file; once space is freed
``--resume`` gives the dataset an uninterrupted scan gives. SIGTERM ends it
with 130, a manifest "interrupted" and a lossless resume. Needs root for the
tmpfs mounts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import load, notebook
from scanner import __version__
from scanner.output.manifest import MANIFEST, Manifest, ScanStatus, read_manifest, write_manifest
from tests.integration.support import Testbed, module_testbed, scan_options

pytestmark = pytest.mark.testbed

NET = 221  # a loopback net of its own
DOMAINS = 400
SEED = 16
PART_ROWS = "40"  # many small parts: a disk fills between two of them
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "adoption.ipynb"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


testbed = module_testbed("ending", net=NET, domains=DOMAINS, seed=SEED)


def scan_argv(tb: Testbed, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "scanner.cli", str(tb.state["domains_file"]), "-o", str(output),
        *scan_options(tb), "-q", "--part-rows", PART_ROWS, *tb.scan_args, *extra,
    ]  # fmt: skip


def run_scan(tb: Testbed, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        scan_argv(tb, output, *extra), capture_output=True, text=True, timeout=300, check=False
    )


def rows(output: Path) -> list[tuple[str, str]]:
    """(domain, verdict) of every row, sorted; a domain written twice shows twice."""
    table = pq.read_table(sorted(str(p) for p in output.glob("part-*.parquet")))
    pairs = zip(
        table.column("domain").to_pylist(), table.column("verdict").to_pylist(), strict=True
    )
    return sorted((str(d), str(v)) for d, v in pairs)


def manifest_of(output: Path) -> Manifest:
    manifest = read_manifest(output)
    assert manifest is not None
    return manifest


@dataclass(frozen=True)
class Reference:
    """An uninterrupted scan of the testbed, and the wall clock around it."""

    output: Path
    before: dt.datetime
    after: dt.datetime


@pytest.fixture(scope="module")
def reference(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    output = tmp_path_factory.mktemp("reference") / "results"
    before = dt.datetime.now(dt.UTC)
    proc = run_scan(testbed, output, "--rate", "5000")
    after = dt.datetime.now(dt.UTC)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return Reference(output, before, after)


def test_a_real_scan_shows_its_version_and_times(
    testbed: Testbed, reference: Reference, tmp_path: Path
) -> None:
    raw = json.loads((reference.output / MANIFEST).read_text())
    assert raw["scanner_version"] == __version__
    assert raw["status"] == "complete"
    assert raw["failure"] is None
    assert raw["counts"]["written"] == raw["counts"]["domains"] == len(testbed.truth)
    table = pq.read_table(sorted(str(p) for p in reference.output.glob("part-*.parquet")))
    transient = table.column("transient").to_pylist() if "transient" in table.column_names else []
    assert raw["counts"]["transient"] == sum(map(bool, transient))
    started = dt.datetime.fromisoformat(raw["started_at"])
    finished = dt.datetime.fromisoformat(raw["finished_at"])
    assert reference.before <= started < finished <= reference.after

    manifest = load.load(reference.output).dataset.manifest
    assert manifest is not None
    assert (manifest.scanner_version, manifest.started_at, manifest.finished_at) == (
        __version__, started, finished,
    )  # fmt: skip
    assert manifest.status is ScanStatus.COMPLETE

    page = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "report", str(reference.output), "-o", str(page)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    shown = {
        "scanner version": __version__,
        "started": started.isoformat(sep=" ", timespec="seconds"),
        "finished": finished.isoformat(sep=" ", timespec="seconds"),
        "status": "complete",
    }
    for label, text in shown.items():
        assert f"<dt>{label}</dt><dd>{text}</dd>" in html
    assert "unknown" not in html[: html.index("</dl>")]


@pytest.mark.slow
def test_the_notebook_shows_the_version_and_times(reference: Reference) -> None:
    nb = notebook.execute(NOTEBOOK, reference.output, timeout=300)
    printed = "".join(
        o.get("text", "")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o["output_type"] == "stream"
    )
    manifest = manifest_of(reference.output)
    assert manifest.started_at is not None
    assert manifest.finished_at is not None
    assert f"scanner version: {__version__}" in printed
    assert f"started: {manifest.started_at.isoformat(sep=' ', timespec='seconds')}" in printed
    assert f"finished: {manifest.finished_at.isoformat(sep=' ', timespec='seconds')}" in printed


# -- a disk that fills --------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: int) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``disk``."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.truncate(0)
        chunk = b"\0" * (1 << 16)
        left = max(0, free - leave)
        while left > 0:
            left -= out.write(chunk[: min(len(chunk), left)])
    return filler


def dataset_bytes(output: Path) -> int:
    return sum(p.stat().st_size for p in output.glob("part-*.parquet"))


@needs_root
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_fails_cleanly_and_resume_completes(
    testbed: Testbed, reference: Reference, tmp_path: Path, workers: str
) -> None:
    size = dataset_bytes(reference.output)
    with tmpfs(tmp_path / "disk", 16 * 1024 * 1024) as disk:
        output = disk / "results"
        filler = fill(disk, leave=size * 2 // 5)
        proc = run_scan(testbed, output, "--rate", "5000", "--workers", workers)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("scan: "), lines[0]
        assert "disk full" in lines[0], lines[0]
        assert str(output) in lines[0], lines[0]
        if workers != "1":
            assert "worker " in lines[0]
        manifest = manifest_of(output)
        assert manifest.status is ScanStatus.FAILED
        assert manifest.failure is not None
        assert "disk full" in manifest.failure
        assert manifest.finished_at is not None
        assert sorted(p.name for p in output.iterdir() if p.name.startswith(".")) == []
        written = rows(output)
        assert 0 < len(written) < len(testbed.truth)
        assert len(written) == manifest.counts.written

        filler.unlink()  # space freed
        resumed = run_scan(testbed, output, "--rate", "5000", "--workers", workers, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert rows(output) == rows(reference.output)  # each domain once, the same verdicts
        assert manifest_of(output).status is ScanStatus.COMPLETE


@needs_root
def test_the_manifest_lands_on_a_disk_with_no_space_left(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 1024 * 1024) as disk:
        started = dt.datetime.now(dt.UTC)
        config = {f"option_{i}": "x" * 40 for i in range(40)}  # a manifest of a few kB
        write_manifest(disk, Manifest(__version__, ScanStatus.RUNNING, started, config=config))
        fill(disk, leave=0)
        fill_rest(disk)
        with pytest.raises(OSError, match="No space left"):
            (disk / "more").write_bytes(b"\0" * 4096)
        failed = Manifest(
            __version__, ScanStatus.FAILED, started, dt.datetime.now(dt.UTC),
            failure="disk full: No space left on device", config=config,
        )  # fmt: skip
        write_manifest(disk, failed)
        assert read_manifest(disk) == failed
        assert not list(disk.glob(".*"))


def fill_rest(disk: Path) -> None:
    """Take the last free blocks too, so the manifest's temporary file cannot be written."""
    with contextlib.suppress(OSError), (disk / "filler-rest").open("wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()


# -- SIGTERM ------------------------------------------------------------------------


def test_sigterm_ends_interrupted_and_resume_is_lossless(
    testbed: Testbed, reference: Reference, tmp_path: Path
) -> None:
    output = tmp_path / "results"
    proc = subprocess.Popen(
        scan_argv(testbed, output, "--rate", "100"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(output.glob("part-*.parquet"))) < 1:
        assert proc.poll() is None, "the scan ended before it could be stopped"
        assert time.monotonic() < deadline, "no part appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    manifest = manifest_of(output)
    assert manifest.status is ScanStatus.INTERRUPTED
    assert manifest.failure is None
    written = rows(output)
    assert 0 < len(written) < len(testbed.truth)
    assert len(written) == manifest.counts.written

    resumed = run_scan(testbed, output, "--rate", "5000", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert rows(output) == rows(reference.output)
