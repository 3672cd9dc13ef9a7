"""analysis.metrics.rollover: readiness for a key or CA change, and DANE-TA pins."""

from __future__ import annotations

import duckdb
import pytest

from analysis import metrics


def test_rollover_readiness(scan: duckdb.DuckDBPyRelation) -> None:
    rrsets = {
        "rrsets": 7,
        "single_record": 5,
        "multiple_records": 2,
        "ee_and_ta": 1,
        "two_ee_keys": 1,
        "with_chain": 6,
        "unmatched_record": 2,  # e.de's old key and i.org's next key
        "nothing_matches": 1,  # e.de
    }
    out = metrics.rollover_readiness(scan).set_index("measure")
    assert out["rrsets"].to_dict() == rrsets
    # The same counts in domains, but for mx1.prov.nl's single record serving c.nl and d.nl.
    assert out["domains"].to_dict() == {**rrsets, "single_record": 6}
    assert out.loc["unmatched_record", "share"] == pytest.approx(2 / 6)
    assert out.loc["multiple_records", "share"] == pytest.approx(2 / 7)


def test_ta_exposure(ta_scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.ta_exposure(ta_scan).set_index("exposure")
    assert out["rrsets"].to_dict() == {
        "ee_backup": 1,
        "root_anchor": 1,
        "intermediate_only": 1,
        "unmatched": 1,
        "no_chain": 1,
    }
    assert out["share"].sum() == pytest.approx(1.0)


def test_ta_anchors(ta_scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.ta_anchors(ta_scan).set_index("anchor")
    assert out.loc["Test Intermediate", ["anchor_kind", "rrsets", "at_risk_rrsets"]].tolist() == [
        "intermediate",
        2,  # t1 and t3
        1,  # t3 has a DANE-EE record that still matches
    ]
    assert out.loc["Test Intermediate", "anchor_org"] == "Test CA"
    assert out.loc["Test Root", ["anchor_kind", "rrsets", "at_risk_rrsets"]].tolist() == [
        "root",
        1,
        0,
    ]
    unmatched = out.loc[metrics.UNMATCHED_ANCHOR]
    assert (unmatched["anchor_kind"], unmatched["rrsets"]) == ("unmatched", 2)  # t4, t5
    assert out["rrsets"].is_monotonic_decreasing
