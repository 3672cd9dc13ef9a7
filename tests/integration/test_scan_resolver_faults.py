"""A resolver that pauses, dies or is restarted with an empty cache during a
scan: the scan waits for it (scanner.resolve.watchdog) and redoes what the
outage spoilt, so that every verdict still equals truth.parquet and the
scan exits 0. A managed Unbound that is killed is restarted by the scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from testbed import cli
from tests.integration.support import Testbed, module_testbed
from tests.integration.test_scan_testbed import mismatches, parts, scan_args

pytestmark = pytest.mark.testbed

NET = 230
DOMAINS = 1500
RATE = "300"  # about five seconds of admission: a fault lands mid-scan


bed = module_testbed("faults", net=NET, domains=DOMAINS, seed=7)


def unbound_pid(tb: Testbed) -> int:
    table = json.loads((tb.directory / cli.PROCESS_FILE).read_text())
    return int(table["unbound"]["pid"])


def start_scan(tb: Testbed, output: Path, *extra: str) -> subprocess.Popen[str]:
    argv = scan_args(tb, output, "--rate", RATE, *extra)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return stderr


def written(output: Path) -> list[str]:
    domains = pq.read_table(parts(output), columns=["domain"]).column("domain").to_pylist()
    return [str(d) for d in domains]


def test_a_resolver_paused_for_five_seconds(bed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "paused"
    proc = start_scan(bed, output)
    pid = unbound_pid(bed)
    try:
        time.sleep(1.5)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(5)
    finally:
        os.kill(pid, signal.SIGCONT)
    finish(proc)
    assert mismatches(bed, output) == []
    assert sorted(written(output)) == sorted(str(r["domain"]) for r in bed.truth)
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["counts"]["outages"] >= 1  # noticed, waited out, redone


def test_a_resolver_killed_and_restarted_with_an_empty_cache(bed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "restarted"
    proc = start_scan(bed, output)
    time.sleep(1.5)
    os.kill(unbound_pid(bed), signal.SIGKILL)
    time.sleep(2)
    cli.restart_unbound(bed.directory)
    finish(proc)
    assert mismatches(bed, output) == []
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["outages"] >= 1


def test_a_managed_unbound_killed_mid_scan_is_restarted(bed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "managed"
    argv = scan_args(bed, output, "--rate", RATE)
    # No --resolver: the scan runs its own Unbound, recursing from the
    # testbed's root with its trust anchor.
    at = argv.index("--resolver")
    del argv[at : at + 2]
    argv += [
        "--trust-anchor", str(bed.state["trust_anchor"]),
        "--root-hints", str(bed.state["root_hints"]),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        managed = _wait_for_child(proc.pid, "unbound", limit=30)
        time.sleep(1.5)
        os.kill(managed, signal.SIGKILL)
    except BaseException:
        proc.kill()
        raise
    stderr = finish(proc)
    assert "restarted" in stderr
    assert mismatches(bed, output) == []


def _wait_for_child(parent: int, name: str, limit: float) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after it.
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if comm == name and ppid == parent:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no {name} child of {parent} within {limit} s")


def test_retry_transient_redoes_only_the_rows_left_transient(bed: Testbed, tmp_path: Path) -> None:
    output = tmp_path / "transient"
    finish(start_scan(bed, output, "--retries", "0"))
    before = pq.read_table(parts(output), columns=["domain", "transient", "scanned_at"])
    transient = {
        str(d) for d, t in zip(before["domain"].to_pylist(), before["transient"].to_pylist(),
                               strict=True) if t
    }  # fmt: skip
    assert transient  # a lame TLSA server's SERVFAIL, a 454 to STARTTLS, ...
    kept = {
        str(d): s for d, s, t in zip(before["domain"].to_pylist(), before["scanned_at"].to_pylist(),
                                     before["transient"].to_pylist(), strict=True) if not t
    }  # fmt: skip
    finish(start_scan(bed, output, "--resume", "--retry-transient"))
    after = pq.read_table(parts(output), columns=["domain", "scanned_at"])
    domains = [str(d) for d in after["domain"].to_pylist()]
    assert sorted(domains) == sorted(str(r["domain"]) for r in bed.truth)  # none twice
    again = dict(zip(domains, after["scanned_at"].to_pylist(), strict=True))
    assert all(again[d] == s for d, s in kept.items())  # the final rows were kept
    assert all(again[d] > max(kept.values()) for d in transient)  # the others redone
    assert mismatches(bed, output) == []
