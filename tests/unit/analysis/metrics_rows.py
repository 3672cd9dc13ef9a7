"""Hand-built datasets for the analysis.metrics tests, whose every number the tests
work out (a helper module, imported by name: pytest puts this folder on sys.path).

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

The trust-anchor dataset (:func:`ta_rows`), six domains with one MX host each:

    t1.nl  2 1 1 of the intermediate, full chain presented    intermediate_only
    t2.nl  2 0 1 of the root                                  root_anchor
    t3.nl  3 1 1 of the leaf and 2 1 1 of the intermediate    ee_backup
    t4.nl  2 1 1 of a retired intermediate                    unmatched
    t5.nl  2 1 1 of the intermediate, no TLS                  no_chain
    t6.nl  3 1 1 only                                         (no DANE-TA: not counted)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from scanner.match.batch import CertPool
from scanner.match.depths import record_depths
from scanner.output.schema import SCHEMA, TLSA_RECORD, VERSION_KEY
from scanner.tlsa import TlsaRecord
from testbed.pki import Issued, KeyType, association
from testbed.pki import Pki as TestbedPki

TLS13 = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
TLS12 = ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


# -- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    issued: Mapping[str, Issued]

    def __getitem__(self, label: str) -> bytes:
        return self.issued[label].der

    def tlsa(self, usage: int, selector: int, mtype: int, label: str) -> dict[str, Any]:
        data = association(self.issued[label], selector, mtype)
        return {"usage": usage, "selector": selector, "mtype": mtype, "data": data}


def make_pki() -> Pki:
    """A root, two intermediates under it, and the leaves of the datasets above
    (testbed.pki), each valid for 90 days from 2026-01-01."""
    pki = TestbedPki(seed=0, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    def ca(name: str, issuer: Issued | None = None) -> Issued:
        return pki.ca(
            name, KeyType.ECDSA, issuer=issuer, days_before=0, days_after=90, organization="Test CA"
        )

    root = ca("Test Root")
    issued = {"root": root, "inter": ca("Test Intermediate", root)}
    issued["old-inter"] = ca("Retired Intermediate", root)
    for leaf in ("prov", "e", "e-old", "h", "i", "i-next", "l", "m", "t"):
        issued[leaf] = pki.leaf(
            [f"{leaf}.example"],
            issued["inter"],
            KeyType.ECDSA,
            key_label=leaf,
            days_before=0,
            days_after=90,
        )
    return Pki(issued)


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


def relation(
    con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]
) -> duckdb.DuckDBPyRelation:
    return con.from_arrow(pa.Table.from_pylist(list(rows), schema=SCHEMA))


def scan_depths(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each TLSA record's ``depth`` as the scan writes it (schema 4,
    scanner.match.depths); the rows above leave it null, as an older dataset reads."""
    pool = CertPool()

    def with_depths(host: Mapping[str, Any]) -> dict[str, Any]:
        records = [
            TlsaRecord(r["usage"], r["selector"], r["mtype"], r["data"]) for r in host["tlsa"]
        ]
        found = record_depths(records, [a["chain"] for a in host["addresses"]], pool)
        depths = found if found is not None else [None] * len(records)
        return {
            **host,
            "tlsa": [{**r, "depth": d} for r, d in zip(host["tlsa"], depths, strict=True)],
        }

    return [{**r, "mx_hosts": [with_depths(h) for h in r["mx_hosts"]]} for r in rows]


def schema_3() -> pa.Schema:
    """The dataset's schema as version 3 had it: TLSA records without ``depth``."""
    record = pa.struct([f for f in TLSA_RECORD if f.name != "depth"])
    host_type = SCHEMA.field("mx_hosts").type.value_type
    fields = [f.with_type(pa.list_(record)) if f.name == "tlsa" else f for f in host_type]
    hosts = SCHEMA.field("mx_hosts").with_type(pa.list_(pa.struct(fields)))
    return SCHEMA.set(SCHEMA.get_field_index("mx_hosts"), hosts).with_metadata({VERSION_KEY: b"3"})


def as_dict(frame: pd.DataFrame, key: str, value: str) -> dict[Any, Any]:
    return dict(zip(frame[key].astype(str), frame[value].tolist(), strict=True))


# -- the datasets -----------------------------------------------------------------------


def main_rows(pki: Pki) -> list[dict[str, Any]]:
    """The thirteen domains of the module docstring."""
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
    i_org = [
        host(
            "mx1.i.org",
            "pass",
            tlsa=[pki.tlsa(3, 1, 1, "i"), pki.tlsa(3, 1, 1, "i-next")],
            addresses=[address("192.0.2.9", chain["i"], TLS12)],
        ),
        host("mx2.i.org", "no_dane_absent", tlsa_state="nxdomain"),
    ]
    # (domain, verdict, MX host, its verdict, its TLSA records, its one address)
    dane: list[tuple[str, str, str, str, dict[str, Any], dict[str, Any]]] = [
        ("e.de", "dane_invalid", "mx.e.de", "fail_no_match", pki.tlsa(3, 1, 1, "e-old"),
         address("192.0.2.5", chain["e"])),
        ("h.org", "no_mx_record", "h.org", "pass", pki.tlsa(3, 1, 1, "h"),
         address("192.0.2.8", chain["h"])),
        ("l.com", "dane_invalid", "mx.l.com", "unusable", pki.tlsa(1, 1, 1, "l"),
         address("192.0.2.12", chain["l"])),
        ("m.com", "dane_invalid", "mx.m.com", "fail_no_tls", pki.tlsa(3, 1, 1, "m"),
         address("192.0.2.13", status="no_starttls")),
    ]  # fmt: skip
    one_host = {
        domain: row(
            domain,
            verdict,
            [host(name, host_verdict, tlsa=[record], addresses=[ip])],
            mx_kind="implicit" if name == domain else "hosts",
        )
        for domain, verdict, name, host_verdict, record, ip in dane
    }
    k_tlsa = [pki.tlsa(3, 1, 1, "e")]  # seen without DNSSEC validation
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
        one_host["e.de"],
        row("f.de", "nxdomain", mx_kind="nxdomain", mx_dnssec="secure"),
        row("g.de", "dnssec_bogus", mx_kind="failed", mx_dnssec="bogus"),
        one_host["h.org"],
        row("i.org", "dane_partial", i_org),
        row("j.org", "dane_invalid", [host("mx.j.org", "fail_dns", tlsa_state="bogus")]),
        row(
            "k.com",
            "no_dane",
            [host("mx.k.com", "no_dane_insecure", tlsa_state="insecure", tlsa=k_tlsa)],
            mx_dnssec="insecure",
        ),
        one_host["l.com"],
        one_host["m.com"],
    ]


def ta_rows(pki: Pki) -> list[dict[str, Any]]:
    """The six domains of the trust-anchor dataset in the module docstring."""
    full = [pki["t"], pki["inter"], pki["root"]]

    def ta_row(domain: str, tlsa: list[dict[str, Any]], chain: list[bytes] | None) -> Any:
        addresses = [address("192.0.2.1", chain)] if chain is not None else []
        status = "pass" if chain else "fail_no_tls"
        return row(
            domain, "dane_valid", [host(f"mx.{domain}", status, tlsa=tlsa, addresses=addresses)]
        )

    return [
        ta_row("t1.nl", [pki.tlsa(2, 1, 1, "inter")], full),
        ta_row("t2.nl", [pki.tlsa(2, 0, 1, "root")], full),
        ta_row("t3.nl", [pki.tlsa(3, 1, 1, "t"), pki.tlsa(2, 1, 1, "inter")], full),
        ta_row("t4.nl", [pki.tlsa(2, 1, 1, "old-inter")], full[:2]),
        ta_row("t5.nl", [pki.tlsa(2, 1, 1, "inter")], None),
        ta_row("t6.nl", [pki.tlsa(3, 1, 1, "t")], full),  # no DANE-TA: not counted
    ]
