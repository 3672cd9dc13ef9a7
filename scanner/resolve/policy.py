"""RFC 7672 section 2 discovery rules over DNS answers (pure).

- Section 2.2.1 and RFC 7505: the MX RRset decides whether DANE applies. A
  secure MX RRset is required (DESIGN.md takes the strict reading; section
  2.2.1 lets a client go further); a lone ``0 .`` is a null MX; no MX
  (NODATA) makes the domain its own MX host (implicit MX, RFC 5321 section
  5.1); MX targets that are the root or a top-level domain are rejected.
- Section 2.2.2: the address records of an MX host must be secure before its
  TLSA records are used. When the host name is a secure CNAME chain, the TLSA
  RRset of the fully expanded name is tried first and, failing a secure
  answer with records there, that of the original name.
- Section 2.2.3 and RFC 6698 section 4.1: TLSA outcomes are kept apart:
  secure records, secure NXDOMAIN, secure NODATA, insecure, bogus, SERVFAIL
  and timeout. A SERVFAIL or bogus TLSA answer under a secure host is a DANE
  failure (mail would be deferred), a secure denial is "no DANE".
- Section 3.2.2: the reference identifiers of a host are the TLSA base
  domain, the MX host name and, for an implicit MX, the domain; the TLSA base
  domain is also the SNI name.

Beside DANE, the names of the per-domain policy records and what their
TXT answers hold: ``_mta-sts.<domain>`` (RFC 8461 section 3.1),
``_smtp._tls.<domain>`` (RFC 8460 section 3) and the policy host
``mta-sts.<domain>`` (RFC 8461 section 3.3). A TXT lookup is kept raw, as
the parsers (scanner.mtasts.record, scanner.tlsrpt) read it; DNSSEC is
recorded but not required (RFC 8461 section 1: MTA-STS is for domains that
cannot sign).

The async driver (scanner.resolve.discover) issues the queries; this module
only decides what the answers mean and what to ask next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scanner import names
from scanner.resolve.answer import DnsAnswer, is_transient
from scanner.status import DaneVerdict, DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord

_RESPONSES = (DnsOutcome.ANSWER, DnsOutcome.NODATA, DnsOutcome.NXDOMAIN)


class MxKind(StrEnum):
    HOSTS = "hosts"
    NULL = "null"  # RFC 7505 null MX: the domain accepts no mail
    IMPLICIT = "implicit"  # no MX RRset: the domain is its own mail host
    NXDOMAIN = "nxdomain"
    INVALID = "invalid"  # every target was the root or a TLD
    FAILED = "failed"  # SERVFAIL, timeout, refused or malformed: see dnssec/error


class TlsaState(StrEnum):
    RECORDS = "records"  # secure, non-empty
    NXDOMAIN = "nxdomain"  # secure denial of the name
    NODATA = "nodata"  # secure denial of the type
    INSECURE = "insecure"  # any answer without AD: not usable for DANE
    BOGUS = "bogus"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    ERROR = "error"  # refused, malformed, truncated beyond repair
    NOT_LOOKED_UP = "not_looked_up"


@dataclass(frozen=True, slots=True)
class MxTarget:
    host: str  # absolute, lower case, trailing dot
    preference: int


@dataclass(frozen=True, slots=True)
class MxDecision:
    kind: MxKind
    dnssec: DnssecStatus
    targets: tuple[MxTarget, ...] = ()
    error: str = ""

    @property
    def dane_applies(self) -> bool:
        return self.dnssec is DnssecStatus.SECURE and self.kind in (
            MxKind.HOSTS,
            MxKind.IMPLICIT,
        )


def decide_mx(domain: str, answer: DnsAnswer, *, max_mx: int) -> MxDecision:
    """What the MX answer for ``domain`` means (RFC 7672 section 2.2.1)."""
    status = answer.dnssec
    if answer.outcome is DnsOutcome.NXDOMAIN:
        return MxDecision(MxKind.NXDOMAIN, status)
    if answer.outcome is DnsOutcome.NODATA:
        # The implicit MX is the name the MX query ended at (after any CNAME).
        return MxDecision(MxKind.IMPLICIT, status, (MxTarget(answer.canonical_name, 0),))
    if answer.outcome is not DnsOutcome.ANSWER:
        return MxDecision(MxKind.FAILED, status, error=_failure(answer))
    records = answer.mx
    if len(records) == 1 and records[0].exchange == ".":
        return MxDecision(MxKind.NULL, status)
    targets: dict[str, int] = {}
    for record in records:
        host = names.absolute(record.exchange)
        if host.count(".") < 2:  # "." or "tld.": RFC 7672 section 2.2.1 hygiene
            continue
        if host not in targets or record.preference < targets[host]:
            targets[host] = record.preference
    ordered = sorted((MxTarget(h, p) for h, p in targets.items()), key=_mx_order)
    if not ordered:
        reason = "every MX target is the root or a top-level domain"
        return MxDecision(MxKind.INVALID, status, error=reason)
    return MxDecision(MxKind.HOSTS, status, tuple(ordered[:max_mx]))


def _mx_order(target: MxTarget) -> tuple[int, str]:
    return (target.preference, target.host)


@dataclass(frozen=True, slots=True)
class AddressDecision:
    """The addresses of one MX host and whether they can anchor DANE."""

    addresses: tuple[str, ...]
    dnssec: DnssecStatus
    expanded: str | None  # end of a CNAME chain, when the host is an alias
    ttl: int | None
    error: str = ""


def decide_addresses(host: str, a: DnsAnswer, aaaa: DnsAnswer) -> AddressDecision:
    """Combine the A and AAAA answers of ``host`` (RFC 7672 section 2.2.2).

    Secure only if every answer that came back is secure; bogus if either is;
    indeterminate when neither came back at all.
    """
    answered = [x for x in (a, aaaa) if x.outcome in _RESPONSES]
    statuses = {x.dnssec for x in (a, aaaa)}
    if DnssecStatus.BOGUS in statuses:
        status = DnssecStatus.BOGUS
    elif not answered:
        status = DnssecStatus.INDETERMINATE
    elif all(x.dnssec is DnssecStatus.SECURE for x in answered):
        status = DnssecStatus.SECURE
    else:
        status = DnssecStatus.INSECURE
    chain = a.cnames or aaaa.cnames
    expanded = chain[-1] if chain and chain[-1] != host else None
    ttls = [x.ttl for x in answered if x.ttl is not None]
    errors = [f"{kind}: {_failure(x)}" for kind, x in (("A", a), ("AAAA", aaaa))
              if x.outcome not in _RESPONSES]  # fmt: skip
    return AddressDecision(
        addresses=tuple(dict.fromkeys(a.addresses + aaaa.addresses)),
        dnssec=status,
        expanded=expanded,
        ttl=min(ttls) if ttls else None,
        error="; ".join(errors),
    )


def tlsa_bases(host: str, addresses: AddressDecision) -> tuple[str, ...]:
    """TLSA base domains to try in order: the expanded name first when the host
    is a secure alias, then the host name itself."""
    if addresses.expanded and addresses.dnssec is DnssecStatus.SECURE:
        return (addresses.expanded, host)
    return (host,)


def tlsa_name(base: str, port: int = 25) -> str:
    return f"_{port}._tcp.{base}"


def classify_tlsa(answer: DnsAnswer) -> TlsaState:
    status = answer.dnssec
    if answer.outcome is DnsOutcome.TIMEOUT:
        return TlsaState.TIMEOUT
    if status is DnssecStatus.BOGUS:
        return TlsaState.BOGUS
    if answer.outcome is DnsOutcome.SERVFAIL:
        return TlsaState.SERVFAIL
    if answer.outcome not in _RESPONSES:
        return TlsaState.ERROR
    if status is not DnssecStatus.SECURE:
        return TlsaState.INSECURE
    if answer.outcome is DnsOutcome.NXDOMAIN:
        return TlsaState.NXDOMAIN
    if answer.outcome is DnsOutcome.NODATA or not answer.tlsa:
        return TlsaState.NODATA
    return TlsaState.RECORDS


def try_next_base(state: TlsaState) -> bool:
    """After the expanded name, the original is tried unless the expanded name
    gave secure records or a failure that must not be papered over."""
    return state in (TlsaState.NXDOMAIN, TlsaState.NODATA, TlsaState.INSECURE)


@dataclass(frozen=True, slots=True)
class TlsaLookup:
    base: str  # the TLSA base domain whose RRset this is (also the SNI name)
    state: TlsaState
    records: tuple[TlsaRecord, ...] = ()
    ttl: int | None = None
    error: str = ""


def tlsa_lookup(base: str, answer: DnsAnswer) -> TlsaLookup:
    state = classify_tlsa(answer)
    records = answer.tlsa if state is TlsaState.RECORDS else ()
    error = _failure(answer) if answer.outcome not in _RESPONSES else ""
    return TlsaLookup(base, state, records, answer.ttl, error)


def mta_sts_name(domain: str) -> str:
    """Where the MTA-STS record of ``domain`` (absolute) lives (RFC 8461 s3.1)."""
    return f"_mta-sts.{domain}"


def tlsrpt_name(domain: str) -> str:
    """Where the TLS-RPT record of ``domain`` (absolute) lives (RFC 8460 s3)."""
    return f"_smtp._tls.{domain}"


def policy_host_name(domain: str) -> str:
    """The host serving the MTA-STS policy of ``domain`` (RFC 8461 s3.3)."""
    return f"mta-sts.{domain}"


@dataclass(frozen=True, slots=True)
class TxtLookup:
    """One TXT lookup as the policy-record parsers read it.

    ``records``: one entry per TXT record of the name the CNAME chain ended
    at, each its character-strings (scanner.mtasts.record.TxtRRset); empty
    for NXDOMAIN and NODATA, and for a lookup that failed. ``answered``
    tells an empty RRset (a fact: no record) from a failure (SERVFAIL,
    bogus, timeout, ...: ``error`` says which, ``transient`` whether asking
    later may tell otherwise).
    """

    name: str  # the name asked, absolute
    outcome: DnsOutcome
    dnssec: DnssecStatus
    records: tuple[tuple[bytes, ...], ...] = ()
    error: str = ""
    transient: bool = False

    @property
    def answered(self) -> bool:
        return self.outcome in _RESPONSES


def txt_lookup(answer: DnsAnswer) -> TxtLookup:
    answered = answer.outcome in _RESPONSES
    return TxtLookup(
        answer.qname,
        answer.outcome,
        answer.dnssec,
        answer.txt if answered else (),
        answer.error if answered else _failure(answer),
        is_transient(answer.outcome, answer.ede_code),
    )


def reference_identifiers(host: str, base: str, implicit_domain: str | None) -> tuple[str, ...]:
    """RFC 7672 section 3.2.2: names a DANE-TA certificate may match, without trailing dots."""
    candidates = [base, host] + ([implicit_domain] if implicit_domain else [])
    return tuple(dict.fromkeys(names.relative(n) for n in candidates))


def dns_verdict(
    mx_secure: bool, addresses: AddressDecision, tlsa: TlsaLookup
) -> DaneVerdict | None:
    """The DaneVerdict that DNS alone settles, or None when the handshake and
    the matcher must decide (secure, non-empty TLSA RRset)."""
    if not mx_secure or addresses.dnssec is DnssecStatus.INSECURE:
        return DaneVerdict.NO_DANE_INSECURE
    if addresses.dnssec is not DnssecStatus.SECURE:
        return DaneVerdict.FAIL_DNS
    state = tlsa.state
    if state is TlsaState.RECORDS:
        return None
    if state in (TlsaState.NXDOMAIN, TlsaState.NODATA):
        return DaneVerdict.NO_DANE_ABSENT
    if state is TlsaState.INSECURE:
        return DaneVerdict.NO_DANE_INSECURE
    return DaneVerdict.FAIL_DNS


def _failure(answer: DnsAnswer) -> str:
    parts = [answer.outcome.value]
    if answer.ede_code is not None:
        parts.append(f"EDE {answer.ede_code}" + (f" {answer.ede_text}" if answer.ede_text else ""))
    if answer.error:
        parts.append(answer.error)
    return ": ".join(parts)
