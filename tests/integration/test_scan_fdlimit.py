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
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from scanner.fdlimit import RESERVE
from testbed.demo import compare
from tests.integration.support import Testbed, module_testbed, run_module, scan_options

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)"),
]

NET = 214


bed = module_testbed("fdlimit", net=NET, domains=2000, seed=16)


def scan_under_limit(tb: Testbed, output: Path, nofile: int) -> subprocess.CompletedProcess[str]:
    return run_module(
        "scanner.cli", str(tb.state["domains_file"]), "-o", str(output), *scan_options(tb),
        "--rate", "5000", "--starttls", "all", *tb.scan_args,
        timeout=600, wrapper=["prlimit", f"--nofile={nofile}:{nofile}", "--"],
    )  # fmt: skip


def mismatches(tb: Testbed, output: Path) -> int:
    return compare(Console(file=io.StringIO()), output, Path(str(tb.state["truth_file"])))


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
    bed: Testbed, tmp_path: Path, nofile: int
) -> None:
    output = tmp_path / "out"
    proc = scan_under_limit(bed, output, nofile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Too many open files" not in proc.stderr
    throttled = re.search(r"at most (\d+) SMTP connections at a time", proc.stderr)
    assert throttled is not None, proc.stderr[-3000:]
    assert 1 <= int(throttled[1]) < nofile - RESERVE
    assert mismatches(bed, output) == 0
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
