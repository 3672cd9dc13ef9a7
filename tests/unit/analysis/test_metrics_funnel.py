"""analysis.metrics.funnel: the adoption funnel, overall and per TLD."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import host, relation, row

from analysis import metrics


def test_funnel_counts_each_stage(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.funnel(scan)
    assert list(out["stage"].astype(str)) == [s.key for s in metrics.FUNNEL_STAGES]
    assert list(out["domains"]) == [13, 11, 9, 7, 2]
    assert out["share_of_all"].tolist() == pytest.approx([1, 11 / 13, 9 / 13, 7 / 13, 2 / 13])
    assert out["share_of_previous"].tolist() == pytest.approx([1, 11 / 13, 9 / 11, 7 / 9, 2 / 7])
    assert out["label"].iloc[-1] == "DANE-valid"


def test_funnel_stages_are_nested_even_when_flags_disagree(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    # TLSA records under an insecure MX, and a "dane_valid" verdict without secure MX:
    # neither may count at a later stage than the earlier stages allow.
    rows = [
        row("x.com", "no_dane", [host("mx.x.com", "no_dane_insecure")], mx_dnssec="insecure"),
        row("y.com", "dane_valid", [host("mx.y.com", "pass")], mx_dnssec="insecure"),
    ]
    assert list(metrics.funnel(relation(connection, rows))["domains"]) == [2, 2, 0, 0, 0]


def test_funnel_of_nothing_has_zero_shares(connection: duckdb.DuckDBPyConnection) -> None:
    out = metrics.funnel(relation(connection, []))
    assert list(out["domains"]) == [0] * 5
    assert out["share_of_all"].tolist() == [0.0] * 5


def test_funnel_by_tld(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.funnel_by_tld(scan)
    wide = out.pivot(index="tld", columns="stage", values="domains")
    assert list(wide.index.astype(str)) == ["com", "de", "org", "nl"]  # largest first
    assert wide.loc["com"].tolist() == [5, 5, 3, 2, 0]
    assert wide.loc["nl"].tolist() == [2, 2, 2, 2, 2]
    assert wide.loc["de"].tolist() == [3, 1, 1, 1, 0]
    assert wide.loc["org"].tolist() == [3, 3, 3, 2, 0]
    com = out[out["tld"] == "com"]
    assert com["share_of_all"].tolist() == pytest.approx([1, 1, 3 / 5, 2 / 5, 0])
    assert list(metrics.funnel_by_tld(scan, top=1)["tld"].astype(str).unique()) == ["com"]
