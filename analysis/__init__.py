"""Analysis of danescan datasets: loading, metrics, figures and reports."""
