"""What an answer means: from a parsed message to the result of one query.

- RFC 1035 section 4.1.1: the RCODE; NOERROR with no record of the type asked
  is NODATA (RFC 2308 section 2.2), NXDOMAIN says the name does not exist
  (section 2.1).
- RFC 1034 section 3.6.2: the CNAME chain from the name asked, followed
  within the answer section, loops and over-long chains reported.
- RFC 2308 section 5: the TTL of a negative answer from the SOA record.
- RFC 4035 section 3.2.3 and RFC 7672 section 2.1: the AD bit of a trusted
  local validating resolver says secure; RFC 8914 section 4: the Extended
  DNS Errors 6-12 say a SERVFAIL is a validation failure (bogus).
- Which outcomes may differ if asked again (``is_transient``).
"""

from __future__ import annotations

from typing import Final

from scanner.resolve.message import Message, Mx, Rcode, Rdata, RdType, Rr, Soa, Value
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord

MAX_CNAME_CHAIN: Final = 16
# RFC 8914 section 4: info codes 6-12 all mean DNSSEC validation failed.
BOGUS_EDE_CODES: Final = frozenset(range(6, 13))
_CNAME: Final = int(RdType.CNAME)


def dnssec_status(outcome: DnsOutcome, ad: bool, ede_code: int | None) -> DnssecStatus:
    """DNSSEC status of one answer from a trusted validating resolver.

    The resolver is local, so its AD bit is trusted (RFC 7672 section 2.1):
    a response (data, NODATA or NXDOMAIN) with AD is secure, without AD
    insecure. A validating resolver answers SERVFAIL for bogus data; the EDE
    codes 6-12 (RFC 8914 section 4) say it was a validation failure, so that
    SERVFAIL is bogus; any other SERVFAIL, and every transport failure, leaves
    the status indeterminate.
    """
    if outcome in (DnsOutcome.ANSWER, DnsOutcome.NODATA, DnsOutcome.NXDOMAIN):
        return DnssecStatus.SECURE if ad else DnssecStatus.INSECURE
    if outcome is DnsOutcome.SERVFAIL and ede_code in BOGUS_EDE_CODES:
        return DnssecStatus.BOGUS
    return DnssecStatus.INDETERMINATE


def is_transient(outcome: DnsOutcome, ede_code: int | None) -> bool:
    """Whether an answer may well be different if asked again later.

    A timeout, a refusal, a truncated answer that TCP could not fetch, and a
    SERVFAIL that is not a validation failure (no EDE 6-12, RFC 8914 section
    4) say something about the path or the resolver's state at the time, not
    about the name: they are retried, never recorded as facts. A malformed
    answer is not: the same question gets the same bytes, and a name that
    cannot be encoded never leaves the client.
    """
    if outcome is DnsOutcome.SERVFAIL:
        return ede_code not in BOGUS_EDE_CODES
    return outcome in (DnsOutcome.TIMEOUT, DnsOutcome.REFUSED, DnsOutcome.TRUNCATED)


class DnsAnswer(Value):
    """The result of one query, whatever happened to it (immutable).

    ``records`` holds the rdata of type ``qtype`` owned by the end of the
    CNAME chain; ``cnames`` the chain's targets in order (the first is the
    target of ``qname``). ``ttl`` is the smallest TTL across the chain and the
    records, or for NODATA/NXDOMAIN the negative TTL from the SOA (RFC 2308
    section 5); None when unknown. ``rcode`` is None when no response was
    accepted. ``server`` is the resolver that answered (or was last tried),
    ``tcp`` whether the answer came over TCP (after TC), ``attempts`` how
    many UDP queries were sent, ``elapsed`` the seconds from the first send
    to the result.
    """

    _fields = (
        "qname", "qtype", "outcome", "rcode", "ad", "records", "cnames", "ttl", "ede_code",
        "ede_text", "error", "server", "tcp", "attempts", "elapsed",
    )  # fmt: skip
    __slots__ = _fields

    def __init__(
        self,
        qname: str,
        qtype: int,
        outcome: DnsOutcome,
        rcode: int | None = None,
        ad: bool = False,
        records: tuple[Rdata, ...] = (),
        cnames: tuple[str, ...] = (),
        ttl: int | None = None,
        ede_code: int | None = None,
        ede_text: str = "",
        error: str = "",
        server: str = "",
        tcp: bool = False,
        attempts: int = 0,
        elapsed: float = 0.0,
    ) -> None:
        self.qname: Final = qname
        self.qtype: Final = qtype
        self.outcome: Final = outcome
        self.rcode: Final = rcode
        self.ad: Final = ad
        self.records: Final = records
        self.cnames: Final = cnames
        self.ttl: Final = ttl
        self.ede_code: Final = ede_code
        self.ede_text: Final = ede_text
        self.error: Final = error
        self.server: Final = server
        self.tcp: Final = tcp
        self.attempts: Final = attempts
        self.elapsed: Final = elapsed

    @property
    def dnssec(self) -> DnssecStatus:
        return dnssec_status(self.outcome, self.ad, self.ede_code)

    @property
    def canonical_name(self) -> str:
        """The owner of ``records``: the last CNAME target, else ``qname``."""
        return self.cnames[-1] if self.cnames else self.qname

    @property
    def mx(self) -> tuple[Mx, ...]:
        return tuple(r for r in self.records if isinstance(r, Mx))

    @property
    def tlsa(self) -> tuple[TlsaRecord, ...]:
        return tuple(r for r in self.records if isinstance(r, TlsaRecord))

    @property
    def txt(self) -> tuple[tuple[bytes, ...], ...]:
        """TXT records, each its character-strings (the shape of
        scanner.mtasts.record.TxtRRset)."""
        # TlsaRecord is a NamedTuple: a tuple too, though not a TXT record.
        return tuple(
            r for r in self.records if isinstance(r, tuple) and not isinstance(r, TlsaRecord)
        )

    @property
    def addresses(self) -> tuple[str, ...]:
        """A or AAAA addresses (for CNAME queries, the target instead)."""
        return tuple(r for r in self.records if isinstance(r, str))


_RCODE_OUTCOMES: Final = {
    int(Rcode.NOERROR): DnsOutcome.ANSWER,
    int(Rcode.SERVFAIL): DnsOutcome.SERVFAIL,
    int(Rcode.NXDOMAIN): DnsOutcome.NXDOMAIN,
    int(Rcode.REFUSED): DnsOutcome.REFUSED,
}


def answer_from_message(
    message: Message,
    qname: str,
    qtype: int,
    *,
    server: str = "",
    tcp: bool = False,
    attempts: int = 1,
    elapsed: float = 0.0,
) -> DnsAnswer:
    """Follow the CNAME chain from ``qname`` (normalised) and classify.

    Rcodes other than NOERROR, SERVFAIL, NXDOMAIN and REFUSED (FORMERR,
    NOTIMP, BADVERS...) are the server declining the query, so they map to
    REFUSED; ``rcode`` keeps the number and ``error`` names it.
    """
    rcode = message.rcode
    outcome = _RCODE_OUTCOMES.get(rcode, DnsOutcome.REFUSED)
    error = "" if rcode in _RCODE_OUTCOMES else f"rcode {_rcode_name(rcode)}"
    owner = qname
    cnames: list[str] = []
    ttls: list[int] = []
    while qtype != _CNAME:
        link = _cname_of(message.answer, owner)
        if link is None:
            break
        if link[0] in cnames or link[0] == qname:
            error = f"CNAME loop at {owner}"
            break
        if len(cnames) == MAX_CNAME_CHAIN:
            error = f"CNAME chain longer than {MAX_CNAME_CHAIN}"
            break
        owner = link[0]
        cnames.append(owner)
        ttls.append(link[1])
    records: list[Rdata] = []
    for rr in message.answer:
        if rr.rdtype == qtype and rr.name == owner:
            records.append(rr.rdata)
            ttls.append(rr.ttl)
    if outcome is DnsOutcome.ANSWER and not records:
        outcome = DnsOutcome.NODATA
    if outcome in (DnsOutcome.NODATA, DnsOutcome.NXDOMAIN):
        for rr in message.authority:
            if isinstance(rr.rdata, Soa):
                ttls += (rr.ttl, rr.rdata.minimum)
                break
        else:
            ttls.clear()  # no SOA: nothing says how long the denial holds
    ttl = min(ttls) if ttls else None
    return DnsAnswer(
        qname,
        qtype,
        outcome,
        rcode,
        message.ad,
        tuple(records),
        tuple(cnames),
        ttl,
        message.ede_code,
        message.ede_text,
        error,
        server,
        tcp,
        attempts,
        elapsed,
    )


def _cname_of(answer: tuple[Rr, ...], owner: str) -> tuple[str, int] | None:
    """Target and TTL of the CNAME owned by ``owner``, if the answer has one."""
    for rr in answer:
        if rr.rdtype == _CNAME and rr.name == owner and isinstance(rr.rdata, str):
            return rr.rdata, rr.ttl
    return None


def _rcode_name(rcode: int) -> str:
    try:
        return Rcode(rcode).name
    except ValueError:
        return str(rcode)
