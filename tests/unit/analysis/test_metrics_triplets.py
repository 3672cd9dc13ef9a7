"""analysis.metrics.triplets: TLSA parameters per record, RRset and domain."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import as_dict

from analysis import metrics


def test_triplets_per_record_rrset_and_domain(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tlsa_triplets(scan)
    by_unit = {
        unit: as_dict(group, "triplet", "count")
        for unit, group in out.groupby("unit", observed=True)
    }
    # Seven RRsets (mx1.prov.nl once, although two domains use it) holding nine
    # records: mx1.i.org has two 3 1 1, mx2.prov.nl a 3 1 1 and a 2 1 1.
    assert by_unit["record"] == {"3 1 1": 7, "2 1 1": 1, "1 1 1": 1}
    assert by_unit["rrset"] == {"3 1 1": 6, "2 1 1": 1, "1 1 1": 1}
    assert by_unit["domain"] == {"3 1 1": 6, "2 1 1": 1, "1 1 1": 1}
    share = {(u, t): s for u, t, s in zip(out["unit"], out["triplet"], out["share"], strict=True)}
    assert share["record", "3 1 1"] == pytest.approx(7 / 9)
    assert share["rrset", "3 1 1"] == pytest.approx(6 / 7)
    assert share["domain", "2 1 1"] == pytest.approx(1 / 7)
    assert out[out["unit"] == "record"]["triplet"].iloc[0] == "3 1 1"  # largest first
