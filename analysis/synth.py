"""Synthetic scan datasets: schema-conformant, of any size, with known counts.

The benchmark needs ten million domains in minutes and the tests need small
datasets whose every number is known, and neither can wait for a real scan.
This module writes a dataset in the layout of a scan (``part-*.parquet`` plus
``manifest.json``) from a catalogue of *variants*: one fully built domain row
each (MX hosts, TLSA records, addresses, certificate chains), with the outcome
of every stage declared by hand next to it. A dataset of N domains allocates
each variant its share of N, shuffles the assignment, and materialises the rows
with Arrow's ``take`` plus a vectorised rewrite of the names, so generation
costs no Python work per domain.

Proportions are those of the testbed catalogue (testbed/scenarios.py), which
resemble the real internet: about 93% of domains unsigned, about 3% signed
without TLSA, about 1% with TLSA, most of those at a few providers, a few
failures of every kind, a TLS 1.3 / 1.2 mix. Provider popularity is Zipf-distributed.
Certificate names are stand-ins, marked "(synthetic)", for the public CAs
whose intermediates DANE-TA records pin.

Every variant states its funnel membership and verdicts itself (never derived
from the generated rows), so :class:`SynthSummary` is an independent oracle
for the metrics. ``truth.parquet`` in the testbed's format can be written next
to the dataset, so the same checks run against the testbed and against this.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scanner.match import der
from scanner.output.manifest import Counts, Manifest, ScanStatus, write_manifest
from scanner.output.schema import MX_HOST, SCHEMA
from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus as S
from scanner.status import DomainVerdict as D
from scanner.status import SmtpStatus

__all__ = [
    "SynthSummary",
    "Variant",
    "write_synthetic",
]

DOMAIN = "{domain}"  # placeholder in template names: the row's domain
PROVIDER = "{provider}"  # placeholder: the provider drawn for the row

_GENERAL_TLDS: Mapping[str, float] = {
    "com": 0.46,
    "de": 0.08,
    "net": 0.06,
    "org": 0.05,
    "uk": 0.04,
    "nl": 0.03,
    "ru": 0.03,
    "br": 0.02,
    "fr": 0.02,
    "cz": 0.01,
    "se": 0.01,
    "info": 0.19,
}
# DNSSEC, and so DANE, concentrates in TLDs whose registries encouraged signing
# (.nl, .se, .cz, ...), so signed domains draw their TLD from this mix.
_SIGNED_TLDS: Mapping[str, float] = {
    "nl": 0.25,
    "de": 0.20,
    "com": 0.15,
    "cz": 0.10,
    "se": 0.08,
    "org": 0.06,
    "net": 0.06,
    "eu": 0.05,
    "ch": 0.05,
}

_TLS13 = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
_TLS13_CHACHA = ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
_TLS12 = ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
_TLS12_ECDSA = ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


@dataclass(frozen=True, slots=True)
class Variant:
    """One kind of domain, and the answers the metrics must give about it.

    ``row`` is a schema row (scanner.output.schema.SCHEMA) whose names may hold
    the placeholders ``{domain}`` and ``{provider}``. The flags are the funnel
    stages of analysis.metrics, stated by hand.
    """

    name: str
    weight: float  # share of all domains
    row: Mapping[str, Any] = field(repr=False)
    with_mx: bool
    secure_mx: bool
    secure_tlsa: bool
    pool: str | None = None  # provider pool the {provider} placeholder draws from
    pool_size: int = 0
    signed_tlds: bool = False
    bulk: bool = False  # takes its share of what the other variants leave
    minimum: int = 1  # at least this many, whatever N

    @property
    def verdict(self) -> str:
        return str(self.row["verdict"])

    @property
    def host_verdicts(self) -> tuple[str, ...]:
        return tuple(str(h["verdict"]) for h in self.row["mx_hosts"])

    @property
    def dane_valid(self) -> bool:
        return self.verdict == D.DANE_VALID


@dataclass(frozen=True, slots=True)
class SynthSummary:
    """What was written: domains per variant, and the counts that follow."""

    path: Path
    domains: int
    parts: int
    variants: tuple[tuple[Variant, int], ...] = field(repr=False)  # (variant, domains)

    @property
    def per_variant(self) -> dict[str, int]:
        return {v.name: n for v, n in self.variants if n}

    def count(self, predicate: Literal["with_mx", "secure_mx", "secure_tlsa", "dane_valid"]) -> int:
        """Domains of the variants for which the flag ``predicate`` is true."""
        return sum(n for v, n in self.variants if getattr(v, predicate))

    def funnel(self) -> dict[str, int]:
        """The funnel of analysis.metrics, from the hand-stated flags."""
        return {
            "domains": self.domains,
            "with_mx": self.count("with_mx"),
            "secure_mx": self.count("secure_mx"),
            "secure_tlsa": self.count("secure_tlsa"),
            "dane_valid": self.count("dane_valid"),
        }

    def verdicts(self) -> dict[str, int]:
        """Domains per DomainVerdict."""
        out: dict[str, int] = {}
        for v, n in self.variants:
            if n:
                out[v.verdict] = out.get(v.verdict, 0) + n
        return out

    def host_verdicts(self) -> dict[str, int]:
        """(domain, MX host) pairs per DaneVerdict."""
        out: dict[str, int] = {}
        for v, n in self.variants:
            for verdict in v.host_verdicts:
                if n:
                    out[verdict] = out.get(verdict, 0) + n
        return out


# -- certificates ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pki:
    """DER certificates of the synthetic CAs and leaves, by label."""

    certs: Mapping[str, bytes]

    def chain(self, *labels: str) -> list[bytes]:
        return [self.certs[label] for label in labels]


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _make_pki(seed: int) -> _Pki:
    # Keys derived from the seed: the TLSA data (SPKI digests) is the same on every run.
    def key(label: str) -> ec.EllipticCurvePrivateKey:
        # 31 bytes stay below the order of P-256, and are never zero in practice.
        secret = int.from_bytes(_sha256(f"{seed}/{label}".encode())[:31], "big") or 1
        return ec.derive_private_key(secret, ec.SECP256R1())

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    certs: dict[str, bytes] = {}
    keys: dict[str, ec.EllipticCurvePrivateKey] = {}
    names: dict[str, x509.Name] = {}

    def issue(label: str, subject: x509.Name, issuer: str | None, *, ca: bool, days: int) -> None:
        keys[label] = key(label)
        sign_key = keys[issuer] if issuer else keys[label]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(names[issuer] if issuer else subject)
            .public_key(keys[label].public_key())
            .serial_number(int.from_bytes(_sha256(label.encode())[:8], "big"))
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.DNSName(f"{label}.synthetic.invalid")])
            builder = builder.add_extension(san, critical=False)
        names[label] = subject
        certs[label] = builder.sign(sign_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )

    le = "Let's Encrypt (synthetic)"
    issue(
        "isrg-x1", _name("ISRG Root X1 (synthetic)", "ISRG (synthetic)"), None, ca=True, days=7300
    )
    for inter in ("R3", "R10", "R11", "E6"):
        issue(inter, _name(inter, le), "isrg-x1", ca=True, days=1095)
    issue("private-ca", _name("Mail Provider CA (synthetic)", "Provider"), None, ca=True, days=3650)
    for leaf, issuer in (
        ("hoster", "R10"),
        ("bulk", "R11"),
        ("provider-ee", "E6"),
        ("provider-eeta", "private-ca"),
        ("provider-roll", "R11"),
        ("provider-roll-next", "R11"),
        ("self", "R11"),
        ("self-old", "R11"),
        ("self-e6", "E6"),
    ):
        issue(leaf, _name(f"{leaf}.synthetic.invalid"), issuer, ca=False, days=90)
    return _Pki(certs)


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _association(cert: bytes, selector: int, mtype: int) -> bytes:
    data = cert if selector == 0 else der.spki(cert)
    if not isinstance(data, bytes):
        raise ValueError(f"synthetic certificate without an SPKI: {data}")
    if mtype == 0:
        return data
    digest = hashes.Hash(hashes.SHA256() if mtype == 1 else hashes.SHA512())
    digest.update(data)
    return digest.finalize()


def _tlsa(usage: int, selector: int, mtype: int, cert: bytes) -> dict[str, Any]:
    return {
        "usage": usage,
        "selector": selector,
        "mtype": mtype,
        "data": _association(cert, selector, mtype),
    }


def _text(record: Mapping[str, Any]) -> str:
    return f"{record['usage']} {record['selector']} {record['mtype']} {record['data'].hex()}"


# -- template rows ---------------------------------------------------------------


def _address(
    address: str,
    status: SmtpStatus,
    verdict: V | None,
    chain: Sequence[bytes] = (),
    tls: tuple[str, str] | None = None,
) -> dict[str, Any]:
    ok = status == SmtpStatus.TLS_OK
    return {
        "address": address,
        "family": 6 if ":" in address else 4,
        "smtp_status": status.value,
        "error": None if ok else status.value.replace("_", " "),
        "verdict": verdict.value if verdict is not None else None,
        "reason": None,
        "banner": "220 mail ESMTP" if status not in _SILENT else None,
        "starttls_offered": status in (SmtpStatus.TLS_OK, SmtpStatus.STARTTLS_REFUSED),
        "tls_version": tls[0] if ok and tls else None,
        "cipher": tls[1] if ok and tls else None,
        "chain": list(chain) if ok else [],
        "connect_ms": 12.0,
        "tls_ms": 30.0 if ok else None,
        "total_ms": 80.0,
        "attempts": 1,
    }


_SILENT = frozenset({SmtpStatus.CONNECT_REFUSED, SmtpStatus.CONNECT_TIMEOUT, SmtpStatus.IO_TIMEOUT})


def _host(
    name: str,
    verdict: V,
    *,
    address_dnssec: S = S.SECURE,
    tlsa_state: str = "records",
    tlsa: Sequence[Mapping[str, Any]] = (),
    matched: Mapping[str, Any] | None = None,
    match_depth: int = -1,
    addresses: Sequence[Mapping[str, Any]] = (),
    preference: int = 10,
) -> dict[str, Any]:
    return {
        "host": name,
        "preference": preference,
        "verdict": verdict.value,
        "reason": None,
        "address_dnssec": address_dnssec.value,
        "cname_target": None,
        "address_ttl": 3600,
        "address_error": None,
        "tlsa_base": name,
        "tlsa_state": tlsa_state,
        "tlsa_ttl": 3600 if tlsa_state == "records" else None,
        "tlsa_error": None if tlsa_state in ("records", "nxdomain", "nodata") else tlsa_state,
        "tlsa": list(tlsa),
        "matched": _text(matched) if matched is not None else None,
        "match_depth": match_depth,
        "addresses": list(addresses),
    }


def _row(
    verdict: D,
    mx_kind: str,
    mx_dnssec: S,
    hosts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "domain": DOMAIN,
        "input_line": 0,
        "verdict": verdict.value,
        "error": None,
        "mx_kind": mx_kind,
        "mx_dnssec": mx_dnssec.value,
        "mx_ttl": 3600 if mx_kind in ("hosts", "null") else None,
        "mx_error": None,
        "mx_hosts": list(hosts),
        "scanned_at": None,
        "duration_ms": None,
        "attempts": 1,
        "transient": False,
    }


def _variants(pki: _Pki) -> tuple[Variant, ...]:
    c = pki.certs
    ok = SmtpStatus.TLS_OK

    def plain(addr: str, leaf: str, issuer: str, tls: tuple[str, str] = _TLS12) -> dict[str, Any]:
        return _address(addr, ok, None, pki.chain(leaf, issuer), tls)

    def dane(
        addr: str, chain: Sequence[str], tls: tuple[str, str] = _TLS13, verdict: V = V.PASS
    ) -> dict[str, Any]:
        return _address(addr, ok, verdict, pki.chain(*chain), tls)

    def insecure_hosts(names: Sequence[str], leaf: str, issuer: str) -> list[dict[str, Any]]:
        return [
            _host(
                n,
                V.NO_DANE_INSECURE,
                address_dnssec=S.INSECURE,
                tlsa_state="not_looked_up",
                addresses=[plain(f"198.51.100.{i + 1}", leaf, issuer)],
                preference=10 * (i + 1),
            )
            for i, n in enumerate(names)
        ]

    def self_ee(
        verdict: V,
        records: Sequence[Mapping[str, Any]],
        chain: Sequence[str],
        *,
        matched: Mapping[str, Any] | None = None,
        depth: int = -1,
        tls: tuple[str, str] = _TLS13,
        status: SmtpStatus = ok,
        tlsa_state: str = "records",
    ) -> dict[str, Any]:
        address = (
            dane("203.0.113.7", chain, tls, verdict)
            if status == ok
            else _address("203.0.113.7", status, verdict)
        )
        return _row(
            D.DANE_VALID if verdict == V.PASS else D.DANE_INVALID,
            "hosts",
            S.SECURE,
            [
                _host(
                    f"mx.{DOMAIN}",
                    verdict,
                    tlsa_state=tlsa_state,
                    tlsa=records,
                    matched=matched,
                    match_depth=depth,
                    addresses=[address],
                )
            ],
        )

    ee_self = _tlsa(3, 1, 1, c["self"])
    ee_old = _tlsa(3, 1, 1, c["self-old"])
    ta_r11 = _tlsa(2, 1, 1, c["R11"])
    ta_r3 = _tlsa(2, 1, 1, c["R3"])
    ta_root = _tlsa(2, 0, 1, c["isrg-x1"])
    pkix = [_tlsa(1, 1, 1, c["self"]), _tlsa(0, 1, 1, c["R11"])]
    ee_provider = _tlsa(3, 1, 1, c["provider-ee"])
    eeta = [_tlsa(3, 1, 1, c["provider-eeta"]), _tlsa(2, 1, 1, c["private-ca"])]
    roll = [_tlsa(3, 1, 1, c["provider-roll"]), _tlsa(3, 1, 1, c["provider-roll-next"])]
    self_chain = ("self", "R11")

    def provider(
        records: Sequence[Mapping[str, Any]],
        chain: Sequence[str],
        tls: tuple[str, str],
        *,
        matched: Mapping[str, Any],
        depth: int = 0,
        v6: bool = True,
    ) -> dict[str, Any]:
        hosts = []
        for i in (1, 2):
            addresses = [dane(f"192.0.2.{i}", chain, tls)]
            if v6:
                addresses.append(dane(f"2001:db8::{i}", chain, tls))
            hosts.append(
                _host(
                    f"mx{i}.{PROVIDER}",
                    V.PASS,
                    tlsa=records,
                    matched=matched,
                    match_depth=depth,
                    addresses=addresses,
                    preference=10 * i,
                )
            )
        return _row(D.DANE_VALID, "hosts", S.SECURE, hosts)

    def variant(name: str, weight: float, row: Mapping[str, Any], flags: str, **kw: Any) -> Variant:
        # flags: M (has mail hosts), S (secure MX), T (a host with secure TLSA records)
        return Variant(
            name,
            weight,
            row,
            with_mx="M" in flags,
            secure_mx="S" in flags,
            secure_tlsa="T" in flags,
            **kw,
        )

    def signed(
        name: str, weight: float, row: Mapping[str, Any], flags: str = "MST", **kw: Any
    ) -> Variant:
        # flags as for variant(); the domains sit under signed TLDs
        return variant(name, weight, row, flags, signed_tlds=True, **kw)

    unsigned_selfhosted = _row(
        D.NO_DANE, "hosts", S.INSECURE, insecure_hosts([f"mx.{DOMAIN}"], "hoster", "R10")
    )
    signed_self = _host(
        f"mx.{DOMAIN}",
        V.NO_DANE_ABSENT,
        tlsa_state="nxdomain",
        addresses=[plain("198.51.100.77", "hoster", "R10", _TLS12_ECDSA)],
    )
    return (
        # -- the unsigned bulk (about 93%)
        variant(
            "unsigned_provider",
            0.55,
            _row(
                D.NO_DANE,
                "hosts",
                S.INSECURE,
                insecure_hosts([f"mx1.{PROVIDER}", f"mx2.{PROVIDER}"], "bulk", "R11"),
            ),
            "M",
            pool="bulk",
            pool_size=2000,
            bulk=True,
        ),
        variant("unsigned_selfhosted", 0.37, unsigned_selfhosted, "M", bulk=True),
        variant(
            "unsigned_no_mx",
            0.004,
            _row(D.NO_MX_RECORD, "implicit", S.INSECURE, insecure_hosts([DOMAIN], "hoster", "R10")),
            "M",
        ),
        variant("nxdomain", 0.004, _row(D.NXDOMAIN, "nxdomain", S.INSECURE), ""),
        variant("input_error", 0.0005, _row(D.INPUT_ERROR, "failed", S.INDETERMINATE), ""),
        # SERVFAIL or timeout on the MX lookup without a validation error.
        variant("dns_error", 0.002, _row(D.DNS_ERROR, "failed", S.INDETERMINATE), ""),
        variant(
            "unsigned_dane_provider",
            0.004,
            _row(
                D.NO_DANE,
                "hosts",
                S.INSECURE,
                insecure_hosts([f"mx1.{PROVIDER}", f"mx2.{PROVIDER}"], "provider-ee", "E6"),
            ),
            "M",
            pool="dane-ee",
            pool_size=150,
        ),
        # Lee et al.'s "no DS": TLSA published in a zone whose delegation is unsigned.
        variant(
            "insecure_delegation_tlsa",
            0.0005,
            _row(
                D.NO_DANE,
                "hosts",
                S.INSECURE,
                [
                    _host(
                        f"mx.{DOMAIN}",
                        V.NO_DANE_INSECURE,
                        address_dnssec=S.INSECURE,
                        tlsa_state="insecure",
                        tlsa=[ee_self],
                        addresses=[plain("198.51.100.9", "self", "R11")],
                    )
                ],
            ),
            "M",
        ),
        # -- signed without DANE (about 3%)
        signed("signed_no_tlsa", 0.015, _row(D.NO_DANE, "hosts", S.SECURE, [signed_self]), "MS"),
        signed(
            "signed_tlsa_nodata",
            0.001,
            _row(D.NO_DANE, "hosts", S.SECURE, [{**signed_self, "tlsa_state": "nodata"}]),
            "MS",
        ),
        signed(
            "signed_insecure_host",
            0.01,
            _row(
                D.NO_DANE,
                "hosts",
                S.SECURE,
                insecure_hosts([f"mx1.{PROVIDER}", f"mx2.{PROVIDER}"], "bulk", "R11"),
            ),
            "MS",
            pool="bulk",
            pool_size=2000,
        ),
        signed("null_mx", 0.001, _row(D.NULL_MX, "null", S.SECURE), ""),
        signed("bogus_mx", 0.0009, _row(D.DNSSEC_BOGUS, "failed", S.BOGUS), ""),
        # -- DANE at providers (most DANE domains)
        signed(
            "dane_provider_ee",
            0.005,
            provider([ee_provider], ("provider-ee", "E6"), _TLS13, matched=ee_provider),
            pool="dane-ee",
            pool_size=150,
        ),
        signed(
            "dane_provider_eeta",
            0.0015,
            provider(eeta, ("provider-eeta", "private-ca"), _TLS13_CHACHA, matched=eeta[0]),
            pool="dane-eeta",
            pool_size=30,
        ),
        signed(
            "dane_provider_rollover",
            0.0008,
            provider(roll, ("provider-roll", "R11"), _TLS12, matched=roll[0], v6=False),
            pool="dane-roll",
            pool_size=20,
        ),
        # -- self-hosted DANE, right and wrong
        signed("ee_311", 0.0008, self_ee(V.PASS, [ee_self], self_chain, matched=ee_self, depth=0)),
        signed(
            "ee_311_tls12",
            0.0003,
            self_ee(V.PASS, [ee_self], self_chain, matched=ee_self, depth=0, tls=_TLS12),
        ),
        signed(
            "ta_211_intermediate",
            0.0003,
            self_ee(V.PASS, [ta_r11], self_chain, matched=ta_r11, depth=1),
        ),
        signed(
            "ta_201_root",
            0.0001,
            self_ee(V.PASS, [ta_root], ("self", "R11", "isrg-x1"), matched=ta_root, depth=2),
        ),
        signed(
            "ee_and_ta",
            0.0002,
            self_ee(V.PASS, [ee_self, ta_r11], self_chain, matched=ee_self, depth=0),
        ),
        signed(
            "rollover_both",
            0.0001,
            self_ee(V.PASS, [ee_old, ee_self], self_chain, matched=ee_self, depth=0),
        ),
        # The CA moved the leaf to another intermediate; the record still pins the old one.
        signed("ta_stale_intermediate", 0.0001, self_ee(V.FAIL_NO_MATCH, [ta_r3], self_chain)),
        signed("stale_after_rollover", 0.0001, self_ee(V.FAIL_NO_MATCH, [ee_old], self_chain)),
        signed(
            "ta_name_mismatch",
            0.00005,
            self_ee(V.FAIL_TA_NAME, [ta_r11], self_chain, matched=ta_r11, depth=1),
        ),
        signed(
            "ta_expired",
            0.00005,
            self_ee(V.FAIL_TA_EXPIRED, [ta_r11], self_chain, matched=ta_r11, depth=1),
        ),
        signed("pkix_only", 0.00005, self_ee(V.UNUSABLE, pkix, self_chain)),
        signed(
            "no_starttls",
            0.00005,
            self_ee(V.FAIL_NO_TLS, [ee_self], (), status=SmtpStatus.NO_STARTTLS),
        ),
        signed(
            "connect_refused",
            0.00005,
            self_ee(V.FAIL_NO_TLS, [ee_self], (), status=SmtpStatus.CONNECT_REFUSED),
        ),
        signed(
            "bogus_tlsa", 0.00005, self_ee(V.FAIL_DNS, [], self_chain, tlsa_state="bogus"), "MS"
        ),
        signed(
            "servfail_tlsa",
            0.00005,
            self_ee(V.FAIL_DNS, [], self_chain, tlsa_state="servfail"),
            "MS",
        ),
        signed(
            "implicit_mx_tlsa",
            0.00005,
            _row(
                D.NO_MX_RECORD,
                "implicit",
                S.SECURE,
                [
                    _host(
                        DOMAIN,
                        V.PASS,
                        tlsa=[ee_self],
                        matched=ee_self,
                        match_depth=0,
                        addresses=[dane("203.0.113.8", self_chain)],
                    )
                ],
            ),
        ),
        signed(
            "two_hosts_one_fails",
            0.00005,
            _row(
                D.DANE_PARTIAL,
                "hosts",
                S.SECURE,
                [
                    _host(
                        f"mx1.{DOMAIN}",
                        V.PASS,
                        tlsa=[ee_self],
                        matched=ee_self,
                        match_depth=0,
                        addresses=[dane("203.0.113.9", self_chain)],
                    ),
                    _host(
                        f"mx2.{DOMAIN}",
                        V.FAIL_NO_MATCH,
                        tlsa=[ee_old],
                        addresses=[dane("203.0.113.10", self_chain, verdict=V.FAIL_NO_MATCH)],
                        preference=20,
                    ),
                ],
            ),
        ),
        # One MX host with TLSA, a backup without: Lee et al.'s "no TLSA" on part of the MX set.
        signed(
            "backup_without_tlsa",
            0.00005,
            _row(
                D.DANE_PARTIAL,
                "hosts",
                S.SECURE,
                [
                    _host(
                        f"mx1.{DOMAIN}",
                        V.PASS,
                        tlsa=[ee_self],
                        matched=ee_self,
                        match_depth=0,
                        addresses=[dane("203.0.113.11", self_chain)],
                    ),
                    {**signed_self, "host": f"mx2.{DOMAIN}", "tlsa_base": f"mx2.{DOMAIN}"},
                ],
            ),
        ),
    )


def _template_table(variants: Sequence[Variant]) -> pa.Table:
    return pa.Table.from_pylist([dict(v.row) for v in variants], schema=SCHEMA)


def _allocate(variants: Sequence[Variant], n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Domains per variant: each its share but at least its minimum, the bulk
    variants split what is left in proportion to their weights."""
    counts = np.array(
        [0 if v.bulk else max(int(n * v.weight), v.minimum) for v in variants], dtype=np.int64
    )
    bulk = [i for i, v in enumerate(variants) if v.bulk]
    left = n - int(counts.sum())
    if left < len(bulk):
        raise ValueError(f"{n} domains cannot hold every variant: ask for more")
    total = sum(variants[i].weight for i in bulk)
    for i in bulk[:-1]:
        counts[i] = int(left * variants[i].weight / total)
    counts[bulk[-1]] = n - int(counts.sum())
    return counts


def _substitute(names: pa.Array, values: pa.Array, placeholder: str) -> pa.Array:
    """Replace ``placeholder`` in each name by the value aligned with it."""
    has = pc.match_substring(names, placeholder)
    filled = pc.replace_substring(names, placeholder, "")
    joined = pc.binary_join_element_wise(filled, values, "")
    return pc.if_else(has, joined, names)


def _fill_hosts(mx_hosts: pa.ListArray, domains: pa.Array, providers: pa.Array) -> pa.ListArray:
    """Rewrite the placeholders in host names and TLSA base names, vectorised."""
    parents = pc.list_parent_indices(mx_hosts)
    values = mx_hosts.values
    domain_of = domains.take(parents)
    provider_of = providers.take(parents)
    columns = {}
    for index, f in enumerate(MX_HOST):
        column = values.field(index)
        if f.name in ("host", "tlsa_base"):
            column = _substitute(column, domain_of, DOMAIN)
            column = _substitute(column, provider_of, PROVIDER)
        columns[f.name] = column
    struct = pa.StructArray.from_arrays(list(columns.values()), fields=list(MX_HOST))
    return pa.ListArray.from_arrays(mx_hosts.offsets, struct, type=pa.list_(MX_HOST))


def _choice(
    rng: np.random.Generator, weights: Mapping[str, float], size: int
) -> pa.DictionaryArray:
    labels = list(weights)
    p = np.array([weights[k] for k in labels], dtype=np.float64)
    picked = rng.choice(len(labels), size=size, p=p / p.sum()).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(picked), pa.array(labels))


def _providers(
    rng: np.random.Generator, variants: Sequence[Variant], kinds: np.ndarray[Any, Any]
) -> pa.Array:
    """The provider (registered domain of the MX hosts) of each row, "" for none.

    Popularity within a pool is Zipf(1.1), truncated: a few operators take most
    domains and a long tail the rest.
    """
    labels = [""]
    picked = np.zeros(len(kinds), dtype=np.int64)
    for index, v in enumerate(variants):
        rows = np.flatnonzero(kinds == index)
        if v.pool is None or not len(rows):
            continue
        p = np.arange(1, v.pool_size + 1, dtype=np.float64) ** -1.1
        picked[rows] = len(labels) + rng.choice(v.pool_size, size=len(rows), p=p / p.sum())
        labels.extend(f"{v.pool}-{k:04d}.example" for k in range(1, v.pool_size + 1))
    return pa.array(labels, pa.string()).take(pa.array(picked))


@dataclass(frozen=True, slots=True)
class _Slice:
    """One part's rows: the variant of each, and the variant its name was drawn for."""

    kinds: np.ndarray[Any, np.dtype[np.int64]]
    name_kinds: np.ndarray[Any, np.dtype[np.int64]]
    first_line: int
    seed: int


def _batch(
    templates: pa.Table, variants: Sequence[Variant], part: _Slice, started: dt.datetime
) -> pa.Table:
    kinds = part.kinds
    n = len(kinds)
    # Names come from their own stream, drawn for the variant before any churn, so
    # a domain keeps its name in every scan generated with the same seed.
    names_rng = np.random.default_rng([part.seed, part.first_line, 0])
    rng = np.random.default_rng([part.seed, part.first_line, 1])
    rows = templates.take(pa.array(kinds))
    line = np.arange(part.first_line, part.first_line + n, dtype=np.int64)
    signed = np.array([v.signed_tlds for v in variants])[part.name_kinds]
    tld = pc.if_else(
        pa.array(signed),
        _choice(names_rng, _SIGNED_TLDS, n).cast(pa.string()),
        _choice(names_rng, _GENERAL_TLDS, n).cast(pa.string()),
    )
    domains = pc.binary_join_element_wise("d", pc.cast(pa.array(line), pa.string()), ".", tld, "")
    providers = _providers(rng, variants, kinds)
    mx_hosts = _fill_hosts(rows.column("mx_hosts").combine_chunks(), domains, providers)
    epoch_ms = int(started.timestamp() * 1000)
    scanned = pa.array(epoch_ms + line * 3, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    duration = pa.array(rng.gamma(2.0, 120.0, n).astype(np.float32))
    columns = {
        "domain": domains,
        "input_line": pa.array(line),
        "mx_hosts": mx_hosts,
        "scanned_at": scanned,
        "duration_ms": duration,
    }
    return pa.Table.from_arrays(
        [columns.get(f.name, rows.column(f.name)) for f in SCHEMA], schema=SCHEMA
    )


def write_synthetic(
    directory: Path | str,
    domains: int,
    *,
    seed: int = 1,
    churn: float = 0.0,
    rows_per_part: int = 200_000,
    truth: Path | str | None = None,
) -> SynthSummary:
    """Write a synthetic scan of ``domains`` domains into ``directory``.

    ``churn`` makes a later scan of the same domains: that share of the
    domains, drawn at random, swap variants among themselves, so proportions
    stay, names stay, and some domains adopt, drop, break or fix DANE.
    ``truth``, when given, receives a truth.parquet in the testbed's format
    (testbed/truth.py). Returns how many domains each variant got.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    pki = _make_pki(seed)
    variants = _variants(pki)
    templates = _template_table(variants)
    counts = _allocate(variants, domains)
    rng = np.random.default_rng(seed)
    name_kinds = np.repeat(np.arange(len(variants), dtype=np.int64), counts)
    rng.shuffle(name_kinds)
    kinds = name_kinds
    if churn > 0:
        moved = rng.choice(domains, size=int(domains * churn), replace=False)
        kinds = name_kinds.copy()
        kinds[moved] = kinds[rng.permutation(moved)]
    started = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=30 if churn else 0)
    truth_writer = None
    if truth is not None:
        truth_writer = pq.ParquetWriter(str(truth), _TRUTH_SCHEMA)
    parts = 0
    try:
        for parts, first in enumerate(range(0, domains, rows_per_part), start=1):
            part = _Slice(
                kinds[first : first + rows_per_part],
                name_kinds[first : first + rows_per_part],
                first + 1,
                seed,
            )
            table = _batch(templates, variants, part, started)
            path = out / f"part-0-{parts - 1:05d}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(path)
            if truth_writer is not None:
                truth_writer.write_table(_truth_rows(table, variants, part.kinds))
    finally:
        if truth_writer is not None:
            truth_writer.close()
    allocated = tuple((v, int(n)) for v, n in zip(variants, counts, strict=True))
    summary = SynthSummary(out, domains, parts, allocated)
    _write_manifest(out, summary, started, seed, churn)
    return summary


_TRUTH_SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("scenario", pa.string()),
        ("verdict", pa.string()),
        ("mx_hosts", pa.list_(pa.struct([("host", pa.string()), ("verdict", pa.string())]))),
    ]
)


def _truth_rows(
    table: pa.Table, variants: Sequence[Variant], kinds: np.ndarray[Any, np.dtype[np.int64]]
) -> pa.Table:
    hosts = table.column("mx_hosts").combine_chunks()
    values = hosts.values
    pairs = pa.StructArray.from_arrays(
        [values.field("host"), values.field("verdict")], names=["host", "verdict"]
    )
    scenario = pa.array([v.name for v in variants]).take(pa.array(kinds))
    return pa.Table.from_arrays(
        [
            table.column("domain"),
            scenario,
            table.column("verdict"),
            pa.ListArray.from_arrays(hosts.offsets, pairs),
        ],
        schema=_TRUTH_SCHEMA,
    )


def _write_manifest(
    out: Path, summary: SynthSummary, started: dt.datetime, seed: int, churn: float
) -> None:
    # The scanner's manifest, as a scan that wrote these rows would have left
    # it; "synthetic" for the version, so no report mistakes it for a scan.
    manifest = Manifest(
        scanner_version="synthetic",
        status=ScanStatus.COMPLETE,
        started_at=started,
        finished_at=started,
        config={
            "generator": "analysis.synth",
            "seed": seed,
            "churn": churn,
            "variants": summary.per_variant,
        },
        counts=Counts(
            domains=summary.domains, written=summary.domains, verdicts=summary.verdicts()
        ),
    )
    write_manifest(out, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.synth DIR N [--seed S] [--truth PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.synth", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("domains", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn", type=float, default=0.0, help="share of domains that change")
    parser.add_argument("--rows-per-part", type=int, default=200_000)
    parser.add_argument("--truth", type=Path)
    args = parser.parse_args(argv)
    summary = write_synthetic(
        args.directory,
        args.domains,
        seed=args.seed,
        churn=args.churn,
        rows_per_part=args.rows_per_part,
        truth=args.truth,
    )
    print(json.dumps({"domains": summary.domains, "parts": summary.parts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
