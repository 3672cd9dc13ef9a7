"""notebooks/adoption.ipynb, executed with nbclient, reports the numbers of the truth.

The notebook runs in a fresh kernel against a dataset and ends with a JSON
output (cell tag ``headline``) of its funnel and verdict counts; those must
equal what truth.parquet says and what analysis.metrics computes directly.
:func:`check_against_truth` takes any dataset with its truth.parquet, so the
same check runs on a scan of the testbed (truth written by testbed/truth.py)
as on the synthetic dataset here (truth written by testbed.synth).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jupytext
import pyarrow.parquet as pq
import pytest

from analysis import load, metrics, notebook
from testbed import synth
from tests.integration.support import Testbed

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK = NOTEBOOKS / "adoption.ipynb"


def headline(nb: Any) -> dict[str, dict[str, int]]:
    """The JSON object the cell tagged ``headline`` displayed."""
    cells = [c for c in nb.cells if "headline" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    outputs = [o for o in cells[0].outputs if "application/json" in o.get("data", {})]
    assert len(outputs) == 1
    data: dict[str, dict[str, int]] = outputs[0]["data"]["application/json"]
    return data


def truth_counts(truth: Path) -> tuple[Counter[str], Counter[str]]:
    """Domains per verdict and (domain, MX host) pairs per host verdict in truth.parquet."""
    rows = pq.read_table(truth, columns=["verdict", "mx_hosts"]).to_pylist()
    domains = Counter(str(r["verdict"]) for r in rows)
    hosts = Counter(str(h["verdict"]) for r in rows for h in r["mx_hosts"])
    return domains, hosts


def nonzero(counts: dict[str, int]) -> Counter[str]:
    return Counter({k: v for k, v in counts.items() if v})


def check_against_truth(nb: Any, results: Path, truth: Path) -> dict[str, dict[str, int]]:
    """Assert the notebook's numbers equal the truth's and the metrics'; return them."""
    numbers = headline(nb)
    domains, hosts = truth_counts(truth)
    assert nonzero(numbers["verdicts"]) == domains
    assert nonzero(numbers["host_verdicts"]) == hosts
    funnel = metrics.funnel(load.load(results).domains)
    assert numbers["funnel"] == dict(
        zip(funnel["stage"].astype(str), funnel["domains"].astype(int), strict=True)
    )
    assert numbers["funnel"]["domains"] == sum(domains.values())
    assert numbers["funnel"]["dane_valid"] == domains["dane_valid"]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    return numbers


def test_the_paired_script_and_notebook_agree() -> None:
    script = jupytext.read(NOTEBOOKS / "adoption.py")
    paired = jupytext.read(NOTEBOOK)
    assert [(c.cell_type, c.source) for c in script.cells] == [
        (c.cell_type, c.source) for c in paired.cells
    ]
    assert [c.metadata.get("tags") for c in script.cells] == [
        c.metadata.get("tags") for c in paired.cells
    ]
    # The committed notebook carries no outputs: reviews see code, not images.
    assert all(not c.get("outputs") for c in paired.cells)


def test_the_notebook_reports_the_truth_of_a_synthetic_scan(tmp_path: Path) -> None:
    older = synth.write_synthetic(tmp_path / "older", 3000, seed=2)
    scan = synth.write_synthetic(
        tmp_path / "scan", 3000, seed=2, churn=0.2, truth=tmp_path / "truth.parquet"
    )
    nb = notebook.execute(NOTEBOOK, scan.path, compare=older.path, timeout=300)
    numbers = check_against_truth(nb, scan.path, tmp_path / "truth.parquet")
    # The generator states its funnel independently of any query.
    assert numbers["funnel"] == scan.funnel()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 6  # funnel, TLDs, verdicts, triplets, providers, difference


@pytest.mark.testbed
def test_the_notebook_reports_the_truth_of_a_testbed_scan(testbed: Testbed, tmp_path: Path) -> None:
    """Scan the simulated internet for real, then run the notebook on the dataset."""
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "scanner.cli", str(testbed.state["domains_file"]),
            "-o", str(results), "--resolver", str(testbed.state["resolver"]),
            "--bogus-probe", str(testbed.state["bogus_probe"]),
            "--ehlo-name", "scanner.danescan.test", "--rate", "5000", "--min-interval", "0",
            "--retry-backoff", "0.1", "--timeout", "4", "-q", *testbed.scan_args]  # fmt: skip
    scan = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert scan.returncode == 0, scan.stderr
    nb = notebook.execute(NOTEBOOK, results, timeout=300)
    numbers = check_against_truth(nb, results, Path(str(testbed.state["truth_file"])))
    assert numbers["funnel"]["domains"] == len(testbed.truth)
