"""`scan` on bad input: each a clear message or a per-line status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.integration.support import Testbed

pytestmark = pytest.mark.testbed


def scan(tb: Testbed, source: str, output: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "scanner.cli", source, "-o", str(output), "-q",
            "--resolver", str(tb.state["resolver"]), "--bogus-probe", str(tb.state["bogus_probe"]),
            "--ehlo-name", "scanner.danescan.test", "--rate", "20000", *tb.scan_args]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def rows(output: Path) -> list[dict[str, object]]:
    parts = sorted(str(p) for p in output.glob("part-*.parquet"))
    return pq.read_table(parts).to_pylist() if parts else []


def test_binary_file(testbed: Testbed, tmp_path: Path) -> None:
    source = tmp_path / "binary.bin"
    blob = os.urandom(200_000).replace(b"\n", b"\x00").replace(b"\r", b"\x00")
    source.write_bytes(blob)  # no line break at all
    proc = scan(testbed, str(source), tmp_path / "out")
    assert proc.returncode == 0
    (row,) = rows(tmp_path / "out")  # one physical line, cut and reported, not read whole
    assert row["verdict"] == "input_error"
    assert row["error"]


def test_ten_thousand_malformed_lines(testbed: Testbed, tmp_path: Path) -> None:
    source = tmp_path / "bad.txt"
    source.write_text("".join(f"not a domain {i}\n" for i in range(10_000)))
    proc = scan(testbed, str(source), tmp_path / "out")
    assert proc.returncode == 0
    found = rows(tmp_path / "out")
    assert len(found) == 10_000
    assert {r["verdict"] for r in found} == {"input_error"}
    assert sorted(int(str(r["input_line"])) for r in found) == list(range(1, 10_001))


def test_empty_file(testbed: Testbed, tmp_path: Path) -> None:
    source = tmp_path / "empty.txt"
    source.write_text("")
    proc = scan(testbed, str(source), tmp_path / "out")
    assert proc.returncode == 0
    assert rows(tmp_path / "out") == []
    assert (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp: str(tmp / "missing.txt"), "cannot read"),
        (lambda tmp: str(tmp), "is a directory"),
    ],
)
def test_unreadable_input(
    testbed: Testbed, tmp_path: Path, make_source: object, message: str
) -> None:
    assert callable(make_source)
    proc = scan(testbed, make_source(tmp_path), tmp_path / "out")
    assert proc.returncode == 1
    assert message in proc.stderr


@pytest.mark.parametrize("output", ["/proc/danescan-results", "file"])
def test_unwritable_output(testbed: Testbed, tmp_path: Path, output: str) -> None:
    source = tmp_path / "list.txt"
    source.write_text("example.test\n")
    if output == "file":  # an existing regular file where the folder should be
        target = tmp_path / "taken"
        target.write_text("not a folder")
    else:  # /proc refuses new entries even to root
        target = Path(output)
    proc = scan(testbed, str(source), target)
    assert proc.returncode == 1
    assert "cannot write to" in proc.stderr
