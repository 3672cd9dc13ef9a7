"""Benchmark of the analysis package: every metric over a synthetic scan of N domains.

Target (issue 7): all metrics over 10,000,000 domains in at most 60 s and
4 GiB of memory on this machine. Two scans are written by testbed.synth
(realistic proportions; the second a month later with 5% of the domains
shuffled between variants, so the difference has adoptions, drops, breaks and
fixes), then a child process loads both from Parquet and computes every
metric of analysis.metrics, the two-scan difference included. Its wall-clock
time covers loading and metrics, not the interpreter's start; its peak RSS is
the kernel's (``wait4`` rusage of that child alone, so the generator's memory
is not counted).

Run from the repository root::

    .venv/bin/python benchmarks/bench_analysis.py --domains 10000000

Datasets are kept in ``--data`` (default /tmp/danescan-bench-analysis) and
reused when they already hold N domains. ``--record`` appends the result to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path("/tmp/danescan-bench-analysis")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TIME_LIMIT_S = 60.0
MEMORY_LIMIT_BYTES = 4 * 1024**3


def _ensure(directory: Path, domains: int, churn: float) -> float:
    """Write the synthetic scan unless it is already there; seconds spent."""
    from scanner.output.manifest import ManifestError, read_manifest

    with contextlib.suppress(ManifestError):
        written = read_manifest(directory)
        if written is not None and written.counts.domains == domains:
            return 0.0
    from testbed import synth

    start = time.perf_counter()
    for stale in directory.glob("part-*.parquet"):
        stale.unlink()
    synth.write_synthetic(directory, domains, seed=1, churn=churn)
    return time.perf_counter() - start


def _child(new: str, old: str) -> None:
    """Load both scans and run every metric; print the timings as JSON."""
    start = time.perf_counter()
    import duckdb

    from analysis import load, metrics

    timings: dict[str, float] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        result = call()
        timings[name] = time.perf_counter() - t
        return result

    imported = time.perf_counter()
    con = duckdb.connect()
    scan = timed("load new scan", lambda: load.load(new, name="new", connection=con))
    before = timed("load old scan (domains)", lambda: load.load_domains(old, connection=con))
    domains, dane = scan.domains, scan.dane
    steps: dict[str, Callable[[], Any]] = {
        "funnel": lambda: metrics.funnel(domains),
        "funnel_by_tld": lambda: metrics.funnel_by_tld(domains),
        "domain_verdicts": lambda: metrics.domain_verdicts(domains),
        "host_verdicts": lambda: metrics.host_verdicts(domains),
        "tlsa_triplets": lambda: metrics.tlsa_triplets(dane),
        "failure_taxonomy": lambda: metrics.failure_taxonomy(dane),
        "failure_categories": lambda: metrics.failure_categories(dane),
        "provider_concentration (operator)": lambda: metrics.provider_concentration(dane),
        "provider_concentration (host)": lambda: metrics.provider_concentration(dane, by="host"),
        "tlsa_records": lambda: metrics.tlsa_records(dane),
        "rollover_readiness": lambda: metrics.rollover_readiness(dane),
        "ta_anchors": lambda: metrics.ta_anchors(dane),
        "ta_exposure": lambda: metrics.ta_exposure(dane),
        "tls_versions": lambda: metrics.tls_versions(dane),
        "tls_ciphers": lambda: metrics.tls_ciphers(dane),
        "scan_diff": lambda: metrics.scan_diff(before.domains, domains),
    }
    outputs = {name: timed(name, step) for name, step in steps.items()}
    funnel = outputs["funnel"]
    diff = outputs["scan_diff"]
    print(
        json.dumps(
            {
                "imports_s": imported - start,
                "total_s": time.perf_counter() - imported,
                "steps_s": timings,
                "funnel": dict(
                    zip(funnel["stage"].astype(str), funnel["domains"].astype(int), strict=True)
                ),
                "changes": diff.groupby("change")["domains"].sum().astype(int).to_dict(),
                "dane_rows": int(dane.shape[0]),
            }
        )
    )


def _measure(new: Path, old: Path) -> tuple[dict[str, Any], int]:
    """Run the child; its JSON report and its peak RSS in bytes."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(new), str(old)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"benchmark child failed with status {process.returncode}")
    return json.loads(output), usage.ru_maxrss * 1024  # Linux reports KiB


def _machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import duckdb
    import pandas
    import pyarrow

    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}, pandas {pandas.__version__}"
    )


def _markdown(
    command: str, domains: int, report: dict[str, Any], peak: int, load: tuple[float, ...]
) -> str:
    total = report["total_s"]
    verdict = "meets" if total <= TIME_LIMIT_S and peak <= MEMORY_LIMIT_BYTES else "MISSES"
    rows = "\n".join(f"| {name} | {seconds:.2f} |" for name, seconds in report["steps_s"].items())
    funnel = ", ".join(f"{k} {v:,}" for k, v in report["funnel"].items())
    changes = ", ".join(f"{k} {v:,}" for k, v in sorted(report["changes"].items()))
    return f"""
## Analysis (analysis.load + analysis.metrics): every metric over {domains:,} domains

Command (from the repository root, after `make setup`):

    {command}

Two synthetic scans from `testbed.synth` (seed 1; the second with 5% churn)
of {domains:,} domains each, 200,000 rows per part file, zstd. A child process
loads both (projected Parquet read into Arrow, registered in DuckDB) and runs
every function of `analysis.metrics`; time from after the imports to the last
result, peak RSS from `wait4` for that child alone. Machine: {_machine()}; load
average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (the machine is shared).

| step | seconds |
|---|---:|
{rows}
| **total** | **{total:.1f}** |

Peak RSS {peak / 1024**3:.2f} GiB; imports {report["imports_s"]:.1f} s (not counted).
Target 60 s and 4 GiB: {verdict} it. Rows in `Scan.dane`: {report["dane_rows"]:,}.
Funnel: {funnel}. Changes: {changes}.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--child", nargs=2, metavar=("NEW", "OLD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    root = args.data / str(args.domains)
    old, new = root / "old", root / "new"
    generated = _ensure(old, args.domains, churn=0.0) + _ensure(new, args.domains, churn=0.05)
    if generated:
        print(f"generated two scans of {args.domains:,} domains in {generated:.0f} s")
    load = os.getloadavg()
    report, peak = _measure(new, old)
    for name, seconds in report["steps_s"].items():
        print(f"{name:36s} {seconds:7.2f} s")
    print(f"{'total':36s} {report['total_s']:7.2f} s   peak RSS {peak / 1024**3:.2f} GiB")
    if args.record:
        flags = " ".join(a for a in sys.argv[1:] if a != "--record")
        command = f".venv/bin/python benchmarks/bench_analysis.py {flags}".strip()
        with RESULTS.open("a") as out:
            out.write(_markdown(command, args.domains, report, peak, load))
    return 0 if report["total_s"] <= TIME_LIMIT_S and peak <= MEMORY_LIMIT_BYTES else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
