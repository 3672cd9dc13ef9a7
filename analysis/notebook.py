"""Execute an analysis notebook against a dataset (what ``make notebooks`` runs).

``python -m analysis.notebook notebooks/adoption.py RESULTS -o OUT.ipynb
[--compare OLD]`` reads the notebook (the jupytext script or the paired
``.ipynb``), runs it in a fresh kernel with ``DANESCAN_RESULTS`` (and
``DANESCAN_COMPARE``) set in the kernel's environment, and writes the
executed notebook, outputs and figures included, to ``OUT.ipynb``. The
committed notebook stays output-free, so reviews see code, not images.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jupytext
from nbclient import NotebookClient

__all__ = ["execute", "main"]


def execute(
    notebook: Path | str,
    results: Path | str,
    *,
    compare: Path | str | None = None,
    timeout: int = 600,
) -> Any:
    """Run ``notebook`` against ``results``; return the executed nbformat notebook."""
    path = Path(notebook)
    nb = jupytext.read(path)  # the .py script or the .ipynb alike
    env = {**os.environ, "DANESCAN_RESULTS": str(results)}
    env.pop("DANESCAN_COMPARE", None)
    if compare is not None:
        env["DANESCAN_COMPARE"] = str(compare)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    # The kernel is a child process: its environment carries the parameters.
    client.execute(env=env)
    return nb


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.notebook", description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("results", help="the scan dataset")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--compare", help="an earlier scan to compare with")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    nb = execute(args.notebook, args.results, compare=args.compare, timeout=args.timeout)
    jupytext.write(nb, args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
