"""A scan under a low open-file limit (scanner.fdlimit): no traceback, its
connections throttled to fit, and every verdict equal to truth.parquet.

Before the scan sized its connections to RLIMIT_NOFILE, sockets it could
not open (EMFILE) were recorded as the mail server's ``connect_refused``
and turned dane_valid domains into dane_invalid ones. Each run is a
subprocess under ``prlimit --nofile=N:N`` (hard = soft: nothing to raise)
against a testbed of its own (net 214), with every MX host handshaken
(``--starttls all``) so that the scan wants many connections at once.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from scanner.fdlimit import RESERVE
from testbed import cli
from testbed.demo import compare

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)"),
]

NET = 214
EHLO = "scanner.danescan.test"


@pytest.fixture(scope="module")
def state() -> Iterator[dict[str, object]]:
    directory = Path(tempfile.mkdtemp(prefix="danescan-fdlimit-"))
    directory.chmod(0o755)
    try:
        yield cli.up(directory, domains=2000, seed=16, net=NET, with_postfix=False, ipv6=False,
                     out=lambda _line: None)  # fmt: skip
    finally:
        cli.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def scan_under_limit(
    state: dict[str, object], output: Path, nofile: int
) -> subprocess.CompletedProcess[str]:
    extra = state.get("scan_args", [])  # what a scan of this testbed needs
    assert isinstance(extra, list)
    argv = [
        "prlimit", f"--nofile={nofile}:{nofile}", "--",
        sys.executable, "-m", "scanner.cli", str(state["domains_file"]), "-o", str(output),
        "--resolver", str(state["resolver"]), "--bogus-probe", str(state["bogus_probe"]),
        "--ehlo-name", EHLO, "--min-interval", "0", "--retry-backoff", "0.1",
        "--timeout", "4", "--rate", "5000", "--starttls", "all",
        *map(str, extra),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def mismatches(state: dict[str, object], output: Path) -> int:
    return compare(Console(file=io.StringIO()), output, Path(str(state["truth_file"])))


@pytest.mark.parametrize(
    "nofile",
    [
        256,  # `ulimit -n 256`: a small container's
        # Room for a handful of connections only, fewer than the testbed's
        # mail addresses: the scan must throttle hard and still be right.
        RESERVE + 16,
    ],
)
def test_scan_under_an_open_file_limit_equals_truth(
    state: dict[str, object], tmp_path: Path, nofile: int
) -> None:
    output = tmp_path / "out"
    proc = scan_under_limit(state, output, nofile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Too many open files" not in proc.stderr
    throttled = re.search(r"at most (\d+) SMTP connections at a time", proc.stderr)
    assert throttled is not None, proc.stderr[-3000:]
    assert 1 <= int(throttled[1]) < nofile - RESERVE
    assert mismatches(state, output) == 0
    shortage = (
        duckdb.connect()
        .execute(
            f"""SELECT count(*) FROM (SELECT unnest(h.addresses) AS a
            FROM (SELECT unnest(mx_hosts) AS h FROM '{output}/part-*.parquet'))
            WHERE a.error LIKE '%open files%'"""
        )
        .fetchall()
    )
    assert shortage == [(0,)]  # no session recorded this machine's shortage
