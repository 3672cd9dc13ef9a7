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


@pytest.mark.parametrize(
    ("host_name", "expected"),
    [
        ("mx1.provider.co.uk", "provider.co.uk"),  # a two-label public suffix
        ("mail.example.com.au", "example.com.au"),
        ("mx.mail.example.com", "example.com"),
        ("provider.co.uk", "provider.co.uk"),  # a registered domain is its own operator
        ("co.uk", "co.uk"),  # a public suffix itself: nothing to register below
        ("localhost", "localhost"),  # one label, as an unlisted TLD
        ("mx1.provider.co.uk.", "provider.co.uk"),  # the root's dot
        ("MX1.Provider.CO.UK", "provider.co.uk"),
        ("mx.customer.blogspot.com", "blogspot.com"),  # a private-section suffix: not one
    ],
)
def test_operator_is_the_registered_domain(host_name: str, expected: str) -> None:
    assert metrics.operator(host_name) == expected


def test_operators_group_hosts_by_registered_domain(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    rows = [
        row("x.uk", "dane_valid", [host("mx1.provider.co.uk", "pass")]),
        row("y.uk", "dane_invalid", [host("mx2.provider.co.uk", "pass")]),
        row("z.uk", "dane_valid", [host("mx.other.co.uk", "pass")]),
        row("w.au", "dane_valid", [host("mail.example.com.au", "pass")]),
    ]
    out = metrics.provider_concentration(relation(connection, rows)).set_index("provider")
    assert list(out.index) == ["provider.co.uk", "example.com.au", "other.co.uk"]
    # Under the old rule of the last two labels, all three .co.uk hosts were "co.uk".
    assert out[["hosts", "domains", "dane_valid"]].to_dict("index") == {
        "provider.co.uk": {"hosts": 2, "domains": 2, "dane_valid": 1},
        "example.com.au": {"hosts": 1, "domains": 1, "dane_valid": 1},
        "other.co.uk": {"hosts": 1, "domains": 1, "dane_valid": 1},
    }
