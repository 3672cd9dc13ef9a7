"""Analysis of danescan datasets: loading, metrics, figures and reports.

- ``load``: find, check and read a scan dataset into DuckDB relations;
- ``metrics``: the measures of a DANE survey, pure functions returning tidy
  pandas DataFrames;
- ``figures``: matplotlib figures of those frames;
- ``report``: one self-contained HTML report (``scan report``);
- ``notebook``: execute an analysis notebook against a dataset.

Synthetic datasets for its tests and benchmarks are written by testbed.synth,
from the testbed's scenario catalogue.

Install with the ``analysis`` extra (DuckDB, pandas, matplotlib, nbclient,
publicsuffixlist).
"""
