"""Which records of a TLSA RRset the matcher uses, and in what order (pure).

- A record is unusable as OpenSSL's ``SSL_dane_tlsa_add`` rejects it: an
  unknown usage, selector or matching type (RFC 6698 sections 2.1.1-2.1.3), a
  digest of the wrong length, empty data, or Full(0) data that does not parse
  as a certificate or key. For SMTP, PKIX-TA(0) and PKIX-EE(1) are unusable
  too (RFC 7672 section 3.1.3). An unusable record never makes the scan fail:
  it takes no part, and an RRset with no usable record is ``unusable``.
- Digest agility (RFC 7671 section 9): per usage and selector only the
  records of the most preferred matching type present are used; Full(0)
  always is. The preference is SHA2-512(2) over SHA2-256(1) by default.
- The usable records are sorted as OpenSSL sorts them (usage, selector,
  matching-type preference, all descending), and split into those tried
  against the leaf (DANE-EE, PKIX-EE) and those tried above it (DANE-TA,
  PKIX-TA), with the certificates and bare keys that DNS itself supplies
  (``2 0 0`` and ``2 1 0``, RFC 7671 section 5.2).

A :class:`Plan` is computed once per distinct RRset (a survey sees the same
RRsets over and over) and read by :mod:`scanner.match.dane`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from scanner.match.certificates import cert_info, spki_parses
from scanner.match.outcome import NO_EE_MATCH, MatchResult, ee_pass
from scanner.status import DaneVerdict
from scanner.tlsa import DIGEST_SIZES, MTYPE_NAMES, USAGE_NAMES, TlsaRecord

__all__ = [
    "ALL_USAGES",
    "DANE_USAGES",
    "DEFAULT_MTYPE_PREFERENCE",
    "Plan",
    "plan_rrset",
    "record_problem",
    "unusable_records",
    "unusable_result",
]

DEFAULT_MTYPE_PREFERENCE = (2, 1)  # most preferred first; Full(0) is outside agility
DANE_USAGES = frozenset({2, 3})  # usable for SMTP (RFC 7672 section 3.1.3)
ALL_USAGES = frozenset({0, 1, 2, 3})  # usable for OpenSSL in general


def record_problem(record: TlsaRecord) -> str | None:
    """Why a record is unusable for any client (as SSL_dane_tlsa_add rejects it), or None.

    Full(0) data that does not parse as a certificate or key is also unusable;
    the matcher checks that when it plans an RRset.
    """
    if record.usage not in ALL_USAGES:
        return f"unknown certificate usage {record.usage}"
    if record.selector not in (0, 1):
        return f"unknown selector {record.selector}"
    if record.mtype not in (0, 1, 2):
        return f"unknown matching type {record.mtype}"
    size = DIGEST_SIZES.get(record.mtype)
    if size is not None and len(record.data) != size:
        return f"{MTYPE_NAMES[record.mtype]} data must be {size} bytes, got {len(record.data)}"
    if not record.data:
        return "empty certificate association data"
    return None


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """An RRset prepared once: usable records sorted and agility-filtered.

    ``ee_pass`` and ``no_match`` are the results that depend on nothing but the
    RRset and one digest of the leaf, built once so the common case (a DANE-EE
    RRset) costs a digest lookup per record.
    """

    ee: tuple[TlsaRecord, ...]  # usages 3 then 1, OpenSSL's order
    ta: tuple[TlsaRecord, ...]  # usages 2 then 0
    dns_certs: tuple[bytes, ...]  # Full(0) certificates of usages 2/0, in RRset order
    bare_keys: tuple[TlsaRecord, ...]  # 2 1 0
    has_pkix: bool
    unusable: tuple[tuple[TlsaRecord, str], ...]
    ee_pass: tuple[tuple[int, int, bytes, MatchResult], ...]  # usage 3: selector, mtype, data
    no_match: MatchResult | None  # when only DANE-EE records are usable

    @property
    def usable(self) -> bool:
        return bool(self.ee or self.ta)


@lru_cache(maxsize=8192)
def plan_rrset(
    records: tuple[TlsaRecord, ...], usages: frozenset[int], preference: tuple[int, ...]
) -> Plan:
    ordinal = {mtype: len(preference) - i for i, mtype in enumerate(preference)}
    ordinal[0] = 0
    usable: list[TlsaRecord] = []
    unusable: list[tuple[TlsaRecord, str]] = []
    for record in records:
        problem = record_problem(record)
        if problem is None and record.mtype not in ordinal:
            problem = f"matching type {record.mtype} is not enabled"
        if problem is None and record.usage not in usages:
            problem = f"{USAGE_NAMES[record.usage]} is unusable for SMTP (RFC 7672 section 3.1.3)"
        if problem is None and record.mtype == 0:
            if record.selector == 0 and cert_info(record.data) is None:
                problem = "Full(0) data is not a certificate"
            elif record.selector == 1 and not spki_parses(record.data):
                problem = "Full(0) data is not a public key"
        if problem is None:
            usable.append(record)
        else:
            unusable.append((record, problem))
    # OpenSSL's order: usage, selector, matching-type preference, all descending.
    usable.sort(key=lambda r: (-r.usage, -r.selector, -ordinal[r.mtype]))
    best: dict[tuple[int, int], int] = {}
    for r in usable:
        best.setdefault((r.usage, r.selector), ordinal[r.mtype])
    kept = [r for r in usable if r.mtype == 0 or ordinal[r.mtype] == best[(r.usage, r.selector)]]
    dns_certs = tuple(
        dict.fromkeys(
            r.data
            for r in records
            if r in kept and r.usage in (0, 2) and r.selector == 0 and r.mtype == 0
        )
    )
    ee = tuple(r for r in kept if r.usage in (3, 1))
    ta = tuple(r for r in kept if r.usage in (2, 0))
    return Plan(
        ee=ee,
        ta=ta,
        dns_certs=dns_certs,
        bare_keys=tuple(r for r in kept if r.usage == 2 and r.selector == 1 and r.mtype == 0),
        has_pkix=any(r.usage in (0, 1) for r in kept),
        unusable=tuple(unusable),
        ee_pass=tuple((r.selector, r.mtype, r.data, ee_pass(r)) for r in ee if r.usage == 3),
        no_match=NO_EE_MATCH if ee and not ta and all(r.usage == 3 for r in ee) else None,
    )


def unusable_records(
    records: Iterable[TlsaRecord],
    *,
    smtp: bool = True,
    mtype_preference: tuple[int, ...] = DEFAULT_MTYPE_PREFERENCE,
) -> tuple[tuple[TlsaRecord, str], ...]:
    """The records the matcher will not use, each with the reason (RRset order)."""
    usages = DANE_USAGES if smtp else ALL_USAGES
    return plan_rrset(tuple(records), usages, mtype_preference).unusable


def unusable_result(plan: Plan) -> MatchResult:
    """The verdict for an RRset with no usable record, naming each record's problem."""
    if not plan.unusable:
        reason = "no TLSA records"
    else:
        # In record order, not the RRset's: resolvers rotate an RRset (RFC 2181
        # section 5 gives it none), and the same records must give the same row.
        reason = "no usable TLSA record: " + "; ".join(
            f"{record.to_text()[:20]}...: {problem}" for record, problem in sorted(plan.unusable)
        )
    return MatchResult(DaneVerdict.UNUSABLE, None, -1, reason, None)
