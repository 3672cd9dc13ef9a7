"""analysis.metrics.providers: who operates the MX hosts of DANE domains."""

from __future__ import annotations

import duckdb
import pytest
from metrics_rows import as_dict, host, relation, row

from analysis import metrics


def test_provider_concentration_by_operator(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.provider_concentration(scan)
    first = out.iloc[0]
    assert (first["rank"], first["provider"], first["hosts"], first["domains"]) == (
        1,
        "prov.nl",
        2,
        2,
    )
    assert first["dane_valid"] == 2
    assert first["share"] == pytest.approx(2 / 7)
    # Seven DANE domains: prov.nl has two (d.nl once, for its two hosts), five
    # self-hosted operators one each.
    assert set(out["provider"]) == {"prov.nl", "e.de", "h.org", "i.org", "l.com", "m.com"}
    assert out["domains"].tolist() == [2, 1, 1, 1, 1, 1]
    assert out["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert len(metrics.provider_concentration(scan, top=3)) == 3


def test_provider_concentration_by_host(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.provider_concentration(scan, by="host")
    counts = as_dict(out, "provider", "domains")
    assert counts["mx1.prov.nl"] == 2
    assert counts["mx2.prov.nl"] == 1
    assert out.iloc[0]["provider"] == "mx1.prov.nl"
    assert "mx2.i.org" not in counts  # no TLSA: not a DANE host


def test_operator_is_the_last_two_labels(connection: duckdb.DuckDBPyConnection) -> None:
    rows = [
        row("x.uk", "dane_valid", [host("mx.mail.example.co.uk", "pass")]),
        row("y.uk", "dane_valid", [host("localhost", "pass")]),
    ]
    out = metrics.provider_concentration(relation(connection, rows))
    assert set(out["provider"]) == {"co.uk", "localhost"}
