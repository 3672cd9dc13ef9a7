"""analysis.metrics.failures: failures per status and per Lee et al. category."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import as_dict, host, relation, row

from analysis import metrics


def test_failure_taxonomy_maps_onto_lee_categories(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.failure_taxonomy(scan).set_index("status")
    assert out.loc["no_tlsa_on_host", ["category", "domains", "hosts"]].tolist() == [
        "no TLSA",
        1,
        1,
    ]
    assert out.loc["fail_no_tls", "category"] == "no certificate"
    assert out.loc["tlsa_insecure", ["category", "domains"]].tolist() == ["no DS", 1]
    assert out.loc["dnssec_bogus", ["category", "level", "domains", "hosts"]].tolist() == [
        "bogus",
        "domain",
        1,
        0,
    ]
    assert out.loc["fail_dns", ["category", "domains"]].tolist() == ["bogus", 1]
    assert out.loc["unusable", ["category", "domains"]].tolist() == ["invalid fields", 1]
    assert out.loc["fail_no_match", ["category", "domains"]].tolist() == ["no match", 1]
    assert out.loc["fail_chain", "domains"] == 0
    assert len(out) == len(metrics.FAILURE_STATUSES)


def test_failure_categories_count_distinct_domains(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.failure_categories(scan)
    assert list(out["category"]) == list(metrics.LEE_CATEGORIES)
    counts = as_dict(out, "category", "domains")
    assert counts == {
        "no TLSA": 1,
        "no certificate": 1,
        "no DS": 1,
        "bogus": 2,
        "invalid fields": 1,
        "no match": 1,
    }
    assert as_dict(out, "category", "share")["bogus"] == pytest.approx(2 / 7)


def test_no_tlsa_on_host_needs_another_host_with_tlsa(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    rows = [row("b.com", "no_dane", [host("mx.b.com", "no_dane_absent", tlsa_state="nxdomain")])]
    out = metrics.failure_taxonomy(relation(connection, rows)).set_index("status")
    assert out["domains"].sum() == 0
