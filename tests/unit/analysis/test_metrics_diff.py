"""analysis.metrics.diff: what changed between two scans."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import host, relation, row

from analysis import metrics


def test_scan_diff_names_every_change(connection: duckdb.DuckDBPyConnection) -> None:
    valid = [host("mx", "pass")]
    failing = [host("mx", "fail_no_match")]
    none = [host("mx", "no_dane_insecure")]
    old = relation(
        connection,
        [
            row("adopt.nl", "no_dane", none),
            row("broke.nl", "dane_valid", valid),
            row("fixed.nl", "dane_invalid", failing),
            row("unbogus.nl", "dnssec_bogus"),
            row("drop.nl", "dane_valid", valid),
            row("same.nl", "dane_valid", valid),
            row("gone.nl", "no_dane", none),
            row("partial.nl", "no_dane", none),
        ],
    )
    new = relation(
        connection,
        [
            row("adopt.nl", "dane_valid", valid),
            row("broke.nl", "no_dane", failing),  # a failing host counts whatever the verdict
            row("fixed.nl", "dane_valid", valid),
            row("unbogus.nl", "dane_valid", valid),
            row("drop.nl", "no_dane", none),
            row("same.nl", "dane_valid", valid),
            row("new.nl", "dane_valid", valid),
            row("partial.nl", "dane_partial", valid),
        ],
    )
    out = metrics.scan_diff(old, new)
    got = {(c, o, n): d for c, o, n, d in out.itertuples(index=False)}
    assert got == {
        ("adopted", "none", "valid"): 1,
        ("adopted broken", "none", "failing"): 1,
        ("broke", "valid", "failing"): 1,
        ("fixed", "failing", "valid"): 1,
        ("fixed", "bogus", "valid"): 1,
        ("dropped", "valid", "none"): 1,
        ("unchanged", "valid", "valid"): 1,
        ("only in new", "absent", "valid"): 1,
        ("only in old", "none", "absent"): 1,
    }
    adopted = metrics.changed_domains(old, new, "adopted")
    assert adopted["domain"].tolist() == ["adopt.nl"]
    assert metrics.changed_domains(old, new, "fixed")["domain"].tolist() == [
        "fixed.nl",
        "unbogus.nl",
    ]
    assert len(metrics.changed_domains(old, new, "fixed", limit=1)) == 1
    with pytest.raises(ValueError, match="unknown change"):
        metrics.changed_domains(old, new, "vanished")


def test_scan_diff_of_a_scan_with_itself_is_all_unchanged(
    scan: duckdb.DuckDBPyRelation,
) -> None:
    out = metrics.scan_diff(scan, scan)
    assert set(out["change"]) == {"unchanged"}
    assert out["domains"].sum() == 13
