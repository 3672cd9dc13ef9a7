"""analysis.metrics.verdicts: domains and MX hosts per verdict."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import as_dict, relation, row

from analysis import metrics


def test_domain_verdicts(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.domain_verdicts(scan)
    counts = as_dict(out, "verdict", "domains")
    assert counts["dane_valid"] == 2
    assert counts["dane_partial"] == 1
    assert counts["dane_invalid"] == 4
    assert counts["no_dane"] == 3
    assert counts["dnssec_bogus"] == counts["nxdomain"] == counts["no_mx_record"] == 1
    assert counts["null_mx"] == counts["input_error"] == 0  # every verdict listed
    assert sum(counts.values()) == 13
    assert out["share"].sum() == pytest.approx(1.0)


def test_host_verdicts_count_pairs_and_distinct_hosts(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.host_verdicts(scan)
    pairs = as_dict(out, "verdict", "pairs")
    hosts = as_dict(out, "verdict", "hosts")
    # mx1.prov.nl serves c.nl and d.nl: two pairs, one host.
    assert (pairs["pass"], hosts["pass"]) == (5, 4)
    assert (pairs["no_dane_absent"], hosts["no_dane_absent"]) == (2, 2)
    assert pairs["fail_no_match"] == pairs["fail_dns"] == pairs["unusable"] == 1
    assert pairs["fail_chain"] == 0
    assert sum(pairs.values()) == 13


def test_unknown_verdicts_are_kept(connection: duckdb.DuckDBPyConnection) -> None:
    out = metrics.domain_verdicts(relation(connection, [row("z.com", "from_the_future")]))
    assert as_dict(out, "verdict", "domains")["from_the_future"] == 1
    assert out["verdict"].iloc[-1] == "from_the_future"
