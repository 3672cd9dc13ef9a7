"""analysis.metrics on hand-built datasets whose every number is worked out below.

The main dataset, thirteen domains (TLD, what it is, funnel stages reached):

    a.com  unsigned, one insecure host                        M
    b.com  signed, host with a secure proof of no TLSA        M S
    c.nl   mx1.prov.nl (3 1 1), valid                         M S T V
    d.nl   mx1.prov.nl and mx2.prov.nl (3 1 1 + 2 1 1), valid M S T V
    e.de   3 1 1 of an old key: fail_no_match                 M S T
    f.de   NXDOMAIN
    g.de   bogus MX RRset
    h.org  implicit MX with TLSA, host passes (no_mx_record)  M S T
    i.org  mx1 passes (3 1 1 now + 3 1 1 next), mx2 no TLSA   M S T
    j.org  TLSA lookup bogus: fail_dns                        M S
    k.com  insecure MX, TLSA seen without AD ("no DS")        M
    l.com  only a 1 1 1 record: unusable                      M S T
    m.com  3 1 1, no STARTTLS: fail_no_tls                    M S T

M: with MX, S: secure MX, T: an MX host with secure TLSA, V: DANE-valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from analysis import metrics
from scanner.output.schema import SCHEMA

TLS13 = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
TLS12 = ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


# -- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    certs: Mapping[str, bytes]

    def __getitem__(self, label: str) -> bytes:
        return self.certs[label]

    def tlsa(self, usage: int, selector: int, mtype: int, label: str) -> dict[str, Any]:
        cert = x509.load_der_x509_certificate(self.certs[label])
        data = (
            self.certs[label]
            if selector == 0
            else cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        digest = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}
        return {"usage": usage, "selector": selector, "mtype": mtype, "data": digest[mtype]}


@pytest.fixture(scope="module")
def pki() -> Pki:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    keys: dict[str, ec.EllipticCurvePrivateKey] = {}
    names: dict[str, x509.Name] = {}
    certs: dict[str, bytes] = {}

    def issue(label: str, cn: str, issuer: str | None, ca: bool) -> None:
        keys[label] = ec.generate_private_key(ec.SECP256R1())
        names[label] = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CA" if ca else "Mail"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(names[label])
            .issuer_name(names[issuer or label])
            .public_key(keys[label].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(keys[issuer or label], hashes.SHA256())
        )
        certs[label] = cert.public_bytes(serialization.Encoding.DER)

    issue("root", "Test Root", None, True)
    issue("inter", "Test Intermediate", "root", True)
    issue("old-inter", "Retired Intermediate", "root", True)
    for leaf in ("prov", "e", "e-old", "h", "i", "i-next", "l", "m", "t"):
        issue(leaf, f"{leaf}.example", "inter", False)
    return Pki(certs)


# -- rows -------------------------------------------------------------------------------


def address(
    ip: str,
    chain: Sequence[bytes] = (),
    tls: tuple[str, str] = TLS13,
    status: str = "tls_ok",
) -> dict[str, Any]:
    ok = status == "tls_ok"
    return {
        "address": ip,
        "smtp_status": status,
        "tls_version": tls[0] if ok else None,
        "cipher": tls[1] if ok else None,
        "chain": list(chain) if ok else [],
    }


def host(
    name: str,
    verdict: str,
    *,
    tlsa_state: str = "records",
    tlsa: Sequence[Mapping[str, Any]] = (),
    addresses: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "host": name,
        "verdict": verdict,
        "tlsa_base": name,
        "tlsa_state": tlsa_state,
        "tlsa": list(tlsa),
        "addresses": list(addresses),
    }


def row(
    domain: str,
    verdict: str,
    hosts: Sequence[Mapping[str, Any]] = (),
    *,
    mx_kind: str = "hosts",
    mx_dnssec: str = "secure",
) -> dict[str, Any]:
    return {
        "domain": domain,
        "verdict": verdict,
        "mx_kind": mx_kind,
        "mx_dnssec": mx_dnssec,
        "mx_hosts": list(hosts),
    }


@pytest.fixture
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def relation(
    con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]
) -> duckdb.DuckDBPyRelation:
    return con.from_arrow(pa.Table.from_pylist(list(rows), schema=SCHEMA))


def main_rows(pki: Pki) -> list[dict[str, Any]]:
    chain = {leaf: [pki[leaf], pki["inter"]] for leaf in ("prov", "e", "h", "i", "l")}
    mx1_prov = host(
        "mx1.prov.nl",
        "pass",
        tlsa=[pki.tlsa(3, 1, 1, "prov")],
        addresses=[address("192.0.2.1", chain["prov"]), address("2001:db8::1", chain["prov"])],
    )
    mx2_prov = host(
        "mx2.prov.nl",
        "pass",
        tlsa=[pki.tlsa(3, 1, 1, "prov"), pki.tlsa(2, 1, 1, "inter")],
        addresses=[address("192.0.2.2", chain["prov"], TLS12)],
    )
    return [
        row(
            "a.com",
            "no_dane",
            [host("mx.a.com", "no_dane_insecure", tlsa_state="not_looked_up")],
            mx_dnssec="insecure",
        ),
        row("b.com", "no_dane", [host("mx.b.com", "no_dane_absent", tlsa_state="nxdomain")]),
        row("c.nl", "dane_valid", [mx1_prov]),
        row("d.nl", "dane_valid", [mx1_prov, mx2_prov]),
        row(
            "e.de",
            "dane_invalid",
            [
                host(
                    "mx.e.de",
                    "fail_no_match",
                    tlsa=[pki.tlsa(3, 1, 1, "e-old")],
                    addresses=[address("192.0.2.5", chain["e"])],
                )
            ],
        ),
        row("f.de", "nxdomain", mx_kind="nxdomain", mx_dnssec="secure"),
        row("g.de", "dnssec_bogus", mx_kind="failed", mx_dnssec="bogus"),
        row(
            "h.org",
            "no_mx_record",
            [
                host(
                    "h.org",
                    "pass",
                    tlsa=[pki.tlsa(3, 1, 1, "h")],
                    addresses=[address("192.0.2.8", chain["h"])],
                )
            ],
            mx_kind="implicit",
        ),
        row(
            "i.org",
            "dane_partial",
            [
                host(
                    "mx1.i.org",
                    "pass",
                    tlsa=[pki.tlsa(3, 1, 1, "i"), pki.tlsa(3, 1, 1, "i-next")],
                    addresses=[address("192.0.2.9", chain["i"], TLS12)],
                ),
                host("mx2.i.org", "no_dane_absent", tlsa_state="nxdomain"),
            ],
        ),
        row("j.org", "dane_invalid", [host("mx.j.org", "fail_dns", tlsa_state="bogus")]),
        row(
            "k.com",
            "no_dane",
            [
                host(
                    "mx.k.com",
                    "no_dane_insecure",
                    tlsa_state="insecure",
                    tlsa=[pki.tlsa(3, 1, 1, "e")],
                )
            ],
            mx_dnssec="insecure",
        ),
        row(
            "l.com",
            "dane_invalid",
            [
                host(
                    "mx.l.com",
                    "unusable",
                    tlsa=[pki.tlsa(1, 1, 1, "l")],
                    addresses=[address("192.0.2.12", chain["l"])],
                )
            ],
        ),
        row(
            "m.com",
            "dane_invalid",
            [
                host(
                    "mx.m.com",
                    "fail_no_tls",
                    tlsa=[pki.tlsa(3, 1, 1, "m")],
                    addresses=[address("192.0.2.13", status="no_starttls")],
                )
            ],
        ),
    ]


@pytest.fixture
def scan(connection: duckdb.DuckDBPyConnection, pki: Pki) -> duckdb.DuckDBPyRelation:
    return relation(connection, main_rows(pki))


def as_dict(frame: pd.DataFrame, key: str, value: str) -> dict[Any, Any]:
    return dict(zip(frame[key].astype(str), frame[value].tolist(), strict=True))


# -- funnel -----------------------------------------------------------------------------


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


# -- verdicts ---------------------------------------------------------------------------


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


# -- TLSA triplets ----------------------------------------------------------------------


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


# -- failures ---------------------------------------------------------------------------


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


# -- providers --------------------------------------------------------------------------


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


# -- records against certificates -------------------------------------------------------------


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


def test_rollover_readiness(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.rollover_readiness(scan).set_index("measure")
    assert out["rrsets"].to_dict() == {
        "rrsets": 7,
        "single_record": 5,
        "multiple_records": 2,
        "ee_and_ta": 1,
        "two_ee_keys": 1,
        "with_chain": 6,
        "unmatched_record": 2,  # e.de's old key and i.org's next key
        "nothing_matches": 1,  # e.de
    }
    assert out["domains"].to_dict() == {
        "rrsets": 7,
        "single_record": 6,
        "multiple_records": 2,
        "ee_and_ta": 1,
        "two_ee_keys": 1,
        "with_chain": 6,
        "unmatched_record": 2,
        "nothing_matches": 1,
    }
    assert out.loc["unmatched_record", "share"] == pytest.approx(2 / 6)
    assert out.loc["multiple_records", "share"] == pytest.approx(2 / 7)


@pytest.fixture
def ta_scan(connection: duckdb.DuckDBPyConnection, pki: Pki) -> duckdb.DuckDBPyRelation:
    full = [pki["t"], pki["inter"], pki["root"]]

    def ta_row(domain: str, tlsa: list[dict[str, Any]], chain: list[bytes] | None) -> Any:
        addresses = [address("192.0.2.1", chain)] if chain is not None else []
        status = "pass" if chain else "fail_no_tls"
        return row(
            domain, "dane_valid", [host(f"mx.{domain}", status, tlsa=tlsa, addresses=addresses)]
        )

    return relation(
        connection,
        [
            ta_row("t1.nl", [pki.tlsa(2, 1, 1, "inter")], full),
            ta_row("t2.nl", [pki.tlsa(2, 0, 1, "root")], full),
            ta_row("t3.nl", [pki.tlsa(3, 1, 1, "t"), pki.tlsa(2, 1, 1, "inter")], full),
            ta_row("t4.nl", [pki.tlsa(2, 1, 1, "old-inter")], full[:2]),
            ta_row("t5.nl", [pki.tlsa(2, 1, 1, "inter")], None),
            ta_row("t6.nl", [pki.tlsa(3, 1, 1, "t")], full),  # no DANE-TA: not counted
        ],
    )


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


# -- TLS --------------------------------------------------------------------------------


def test_tls_versions_count_endpoints_once(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tls_versions(scan)
    # Endpoints: mx1.prov.nl x2 (in c.nl and d.nl, counted once), mx.e.de, h.org,
    # mx.l.com on 1.3; mx2.prov.nl, mx1.i.org on 1.2; mx.m.com has no TLS.
    assert as_dict(out, "tls_version", "endpoints") == {"TLSv1.3": 5, "TLSv1.2": 2}
    assert as_dict(out, "tls_version", "domains") == {"TLSv1.3": 5, "TLSv1.2": 2}
    assert out["share"].tolist() == pytest.approx([5 / 7, 2 / 7])


def test_tls_ciphers(scan: duckdb.DuckDBPyRelation) -> None:
    out = metrics.tls_ciphers(scan)
    assert as_dict(out, "cipher", "endpoints") == {
        "TLS_AES_256_GCM_SHA384": 5,
        "ECDHE-RSA-AES256-GCM-SHA384": 2,
    }


# -- two scans ----------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "table",
    [metrics.tlsa_records, metrics.rollover_readiness, metrics.ta_exposure, metrics.ta_anchors],
)
def test_a_shared_observation_gives_the_same_table(
    table: Callable[..., pd.DataFrame], ta_scan: duckdb.DuckDBPyRelation
) -> None:
    alone = table(ta_scan)
    assert not alone.empty
    pd.testing.assert_frame_equal(table(ta_scan, observed=metrics.observe(ta_scan)), alone)
