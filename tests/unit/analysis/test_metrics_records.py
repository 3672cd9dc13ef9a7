"""analysis.metrics.records: every TLSA record checked against the certificates presented."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd
import pytest
from metrics_rows import Pki, address, host, relation, row

from analysis import metrics


def test_tlsa_records_find_what_matches(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tlsa_records(scan).set_index(["base", "triplet"])
    assert out.loc[("mx2.prov.nl", "2 1 1"), ["matches", "depth", "anchor_kind"]].tolist() == [
        True,
        1,
        "intermediate",
    ]
    assert out.loc[("mx2.prov.nl", "2 1 1"), "anchor"] == "Test Intermediate"
    assert out.loc[("mx1.prov.nl", "3 1 1"), "domains"] == 2
    assert not out.loc[("mx.e.de", "3 1 1"), "matches"]
    assert not out.loc[("mx.m.com", "3 1 1"), "presented"]
    assert out.loc[("mx.l.com", "1 1 1"), "depth"] == 0
    assert len(out) == 9


def test_records_of_unknown_parameters_match_nothing(
    connection: duckdb.DuckDBPyConnection, pki: Pki
) -> None:
    odd = [
        {"usage": 3, "selector": 7, "mtype": 1, "data": b"x" * 32},
        {"usage": 3, "selector": 1, "mtype": 9, "data": b"x" * 32},
        {**pki.tlsa(3, 1, 1, "t"), "usage": 4},  # unknown usage, data of the leaf
    ]
    chain = [pki["t"], pki["inter"]]
    rows = [
        row(
            "o.nl",
            "dane_invalid",
            [host("mx.o.nl", "unusable", tlsa=odd, addresses=[address("192.0.2.1", chain)])],
        )
    ]
    out = metrics.tlsa_records(relation(connection, rows))
    assert out["triplet"].tolist() == ["3 7 1", "3 1 9", "4 1 1"]
    assert out["matches"].tolist() == [False, False, True]


@pytest.mark.parametrize(
    "table",
    [metrics.tlsa_records, metrics.rollover_readiness, metrics.ta_exposure, metrics.ta_anchors],
)
def test_shared_record_checks_give_the_same_table(
    table: Callable[..., pd.DataFrame], ta_scan: duckdb.DuckDBPyRelation
) -> None:
    alone = table(ta_scan)
    assert not alone.empty
    pd.testing.assert_frame_equal(table(ta_scan, checks=metrics.check_records(ta_scan)), alone)
