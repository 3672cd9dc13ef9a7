"""Analysis of danescan datasets: loading, metrics, figures and reports.

- ``load``: find, check and read a scan dataset into DuckDB relations;
- ``metrics``: the measures of a DANE survey, pure functions returning tidy
  pandas DataFrames;
- ``figures``: matplotlib figures of those frames;
- ``report``: one self-contained HTML report (``scan report``);
- ``notebook``: execute an analysis notebook against a dataset;
- ``synth``: synthetic datasets of any size with known counts (tests and
  benchmarks).

Install with the ``analysis`` extra (DuckDB, pandas, matplotlib, nbclient,
publicsuffixlist).
"""
