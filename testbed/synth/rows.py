"""Template rows of a synthetic scan, in the scanner's output schema
(scanner.output.schema), and the certificates they carry.

Names in a template may hold the placeholders ``{domain}`` and ``{provider}``,
filled in per row when a dataset is written (testbed.synth.write).
Certificates come from testbed.pki (keys derived from the seed), and TLSA
data from testbed.pki.association (RFC 6698 section 2.1), the testbed's one
TLSA computation. Certificate names are stand-ins, marked "(synthetic)", for
the public CAs whose intermediates DANE-TA records pin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus as S
from scanner.status import DomainVerdict as D
from scanner.status import SmtpStatus
from testbed.pki import Issued, KeyType, Pki, association

DOMAIN = "{domain}"  # placeholder in template names: the row's domain
PROVIDER = "{provider}"  # placeholder: the provider drawn for the row

TLS13 = ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
TLS13_CHACHA = ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
TLS12 = ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
TLS12_ECDSA = ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")

_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# label -> (issuer label, days valid); the CAs first, each after its issuer.
_CAS = {
    "ISRG Root X1 (synthetic)": (None, 7300),
    "R3": ("ISRG Root X1 (synthetic)", 1095),
    "R10": ("ISRG Root X1 (synthetic)", 1095),
    "R11": ("ISRG Root X1 (synthetic)", 1095),
    "E6": ("ISRG Root X1 (synthetic)", 1095),
    "Mail Provider CA (synthetic)": (None, 3650),
}
_LEAVES = {
    "hoster": "R10",
    "bulk": "R11",
    "provider-ee": "E6",
    "provider-eeta": "R11",
    "provider-roll": "R11",
    "provider-roll-next": "R11",
    "self": "R11",
    "self-old": "R11",
    "self-private": "Mail Provider CA (synthetic)",
}


class Certs:
    """The synthetic CAs and leaves, by label, issued by testbed.pki."""

    def __init__(self, seed: int) -> None:
        pki = Pki(seed=seed, now=_START)
        self.issued: dict[str, Issued] = {}
        for label, (issuer, days) in _CAS.items():
            parent = self.issued[issuer] if issuer is not None else None
            self.issued[label] = pki.ca(
                label, KeyType.ECDSA, issuer=parent, days_before=0, days_after=days
            )
        for label, issuer in _LEAVES.items():
            self.issued[label] = pki.leaf(
                [f"{label}.synthetic.invalid"],
                self.issued[issuer],
                KeyType.ECDSA,
                key_label=label,
                days_before=0,
                days_after=90,
            )

    def chain(self, *labels: str) -> list[bytes]:
        return [self.issued[label].der for label in labels]

    def tlsa(self, usage: int, selector: int, mtype: int, label: str) -> dict[str, Any]:
        """A TLSA record (as the schema holds it) for the certificate ``label``."""
        data = association(self.issued[label], selector, mtype)
        return {"usage": usage, "selector": selector, "mtype": mtype, "data": data}


def text(record: Mapping[str, Any]) -> str:
    return f"{record['usage']} {record['selector']} {record['mtype']} {record['data'].hex()}"


_SILENT = frozenset({SmtpStatus.CONNECT_REFUSED, SmtpStatus.CONNECT_TIMEOUT, SmtpStatus.IO_TIMEOUT})


def address(
    ip: str,
    status: SmtpStatus,
    verdict: V,
    chain: Sequence[bytes] = (),
    tls: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One address's session: ``chain`` and ``tls`` only count when TLS succeeded."""
    ok = status == SmtpStatus.TLS_OK
    return {
        "address": ip,
        "family": 6 if ":" in ip else 4,
        "smtp_status": status.value,
        "error": None if ok else status.value.replace("_", " "),
        "verdict": verdict.value,
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


def host(
    name: str,
    verdict: V,
    *,
    address_dnssec: S = S.SECURE,
    cname_target: str | None = None,
    tlsa_base: str | None = None,
    tlsa_state: str = "records",
    tlsa: Sequence[Mapping[str, Any]] = (),
    matched: Mapping[str, Any] | None = None,
    match_depth: int = -1,
    addresses: Sequence[Mapping[str, Any]] = (),
    preference: int = 10,
) -> dict[str, Any]:
    """One MX host; its TLSA base is its own name unless ``tlsa_base`` says."""
    return {
        "host": name,
        "preference": preference,
        "verdict": verdict.value,
        "reason": None,
        "address_dnssec": address_dnssec.value,
        "cname_target": cname_target,
        "address_ttl": 3600,
        "address_error": None,
        "tlsa_base": tlsa_base if tlsa_base is not None else name,
        "tlsa_state": tlsa_state,
        "tlsa_ttl": 3600 if tlsa_state == "records" else None,
        "tlsa_error": None if tlsa_state in ("records", "nxdomain", "nodata") else tlsa_state,
        "tlsa": with_depths(tlsa, addresses),
        "matched": text(matched) if matched is not None else None,
        "match_depth": match_depth,
        "addresses": list(addresses),
    }


def with_depths(
    tlsa: Sequence[Mapping[str, Any]], addresses: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``tlsa`` with each record's ``depth`` as the scanner writes it: the lowest
    depth at which it matches a certificate of the chains ``addresses`` presented
    (RFC 6698 section 2.1, any usage), -1 for none, null when none presented."""
    chains = [a["chain"] for a in addresses if a["chain"]]
    return [{**r, "depth": _depth(r, chains) if chains else None} for r in tlsa]


def _depth(record: Mapping[str, Any], chains: Sequence[Sequence[bytes]]) -> int:
    selector, mtype = record["selector"], record["mtype"]
    if selector not in (0, 1) or mtype not in (0, 1, 2):
        return -1
    found = (
        depth
        for chain in chains
        for depth, cert in enumerate(chain)
        if association(cert, selector, mtype) == record["data"]
    )
    return min(found, default=-1)


def row(
    verdict: D, mx_kind: str, mx_dnssec: S, hosts: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A domain's row; the generator fills in its name, line and times."""
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
