"""What a domain publishes beside DANE, judged from what the stages observed
(pure): its MTA-STS policy applied to its MX hosts, TLS-RPT, REQUIRETLS and
the signs of a STARTTLS downgrade.

- RFC 8461 section 4: an MX host is acceptable under a policy when a
  pattern of the policy's ``mx`` lines matches its name (s4.1,
  scanner.mtasts.patterns) and the chain it presented is PKIX-valid for
  that name (s4.2, scanner.mtasts.pkix). A host has several addresses; a
  sender lands on any of them, so the host is ``valid`` only when every
  address that presented a chain presented a valid one, and otherwise
  carries the first failure; a host no address of which presented a chain
  is ``no_tls``.
- RFC 8689 section 4.1: REQUIRETLS is offered in the EHLO reply after
  STARTTLS (an offer in plaintext means nothing: section 5 of RFC 3207).
- STARTTLS downgrade signs (RFC 7672 section 1.3 on active attacks against
  opportunistic STARTTLS): a host with a secure TLSA RRset whose address
  offers no STARTTLS; a STARTTLS answered with a refusal (421 and kin) or
  with a connection dropped before TLS came up; one address of a host
  offering STARTTLS and another not.

Time is passed in (``now``), so the same observation is judged again
``--days-ahead`` days later by passing a later ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cryptography.x509.verification import Store

from scanner.handshake.session import LOST_IN_TLS_HANDSHAKE, SessionResult
from scanner.handshake.smtp import ehlo_keywords, offers
from scanner.mtasts.patterns import host_status
from scanner.mtasts.pkix import check_chain
from scanner.mtasts.policy import StsHostStatus, StsPolicy
from scanner.mtasts.record import StsRecord, TxtRecordStatus, TxtRRset, parse_sts_record
from scanner.mtasts.response import FetchResult, FetchStatus
from scanner.status import DnsOutcome, SmtpStatus
from scanner.tlsrpt import TlsRptRecord, parse_tlsrpt_record


class DowngradeSign(StrEnum):
    """A sign that something between the scanner and a host strips STARTTLS."""

    TLSA_WITHOUT_STARTTLS = "tlsa_without_starttls"  # secure TLSA, no STARTTLS offered
    STARTTLS_REJECTED = "starttls_rejected"  # refused, or dropped right after STARTTLS
    STARTTLS_INCONSISTENT = "starttls_inconsistent"  # offered on one address, not another


@dataclass(frozen=True, slots=True)
class StsObservation:
    """The domain's MTA-STS: its record, the fetch (None: not tried) and the
    policy parsed from what the fetch returned (None: nothing to parse)."""

    record: StsRecord
    fetch: FetchResult | None = None
    policy: StsPolicy | None = None

    @property
    def applies(self) -> StsPolicy | None:
        """The policy a sender applies: a valid record and a policy parsed whole."""
        if self.record.status is TxtRecordStatus.VALID and self.policy and self.policy.ok:
            return self.policy
        return None

    @property
    def transient(self) -> bool:
        """Not a fact: the record's lookup or the fetch may give another answer later."""
        if self.record.status is TxtRecordStatus.LOOKUP_ERROR:
            return True
        return self.fetch is not None and self.fetch.transient


@dataclass(frozen=True, slots=True)
class HostJudgement:
    """One MX host under the domain's MTA-STS policy (None where none applies)."""

    status: StsHostStatus
    error: str = ""


@dataclass(frozen=True, slots=True)
class Policies:
    """Everything beside DANE the scan observed of one domain."""

    sts: StsObservation
    tlsrpt: TlsRptRecord


class TxtAnswer(Protocol):
    """A TXT lookup as the resolve stage keeps it."""

    @property
    def outcome(self) -> DnsOutcome: ...
    @property
    def records(self) -> TxtRRset: ...
    @property
    def error(self) -> str: ...


_ABSENT = (DnsOutcome.NXDOMAIN, DnsOutcome.NODATA)


def sts_record(answer: TxtAnswer) -> StsRecord:
    """The ``_mta-sts`` record of a lookup: no answer is no record (s3.1),
    a failed lookup is no fact."""
    if answer.outcome is DnsOutcome.ANSWER:
        return parse_sts_record(answer.records)
    if answer.outcome in _ABSENT:
        return StsRecord(TxtRecordStatus.ABSENT)
    return StsRecord.failed(answer.error or str(answer.outcome))


def tlsrpt_record(answer: TxtAnswer) -> TlsRptRecord:
    """The ``_smtp._tls`` record of a lookup (RFC 8460 section 3)."""
    if answer.outcome is DnsOutcome.ANSWER:
        return parse_tlsrpt_record(answer.records)
    if answer.outcome in _ABSENT:
        return TlsRptRecord(TxtRecordStatus.ABSENT)
    return TlsRptRecord.failed(answer.error or str(answer.outcome))


def requiretls_offered(session: SessionResult) -> bool | None:
    """Whether the EHLO reply over TLS offered REQUIRETLS; None without one."""
    reply = session.transcript.ehlo_tls
    return None if reply is None else offers(ehlo_keywords(reply), "REQUIRETLS")


def starttls_rejected(session: SessionResult) -> bool:
    """Refused (a 4xx or 5xx reply to STARTTLS), or the connection dropped
    after the server said 220 and before TLS came up."""
    if session.status is SmtpStatus.STARTTLS_REFUSED:
        return True
    reply = session.transcript.starttls
    return (
        reply is not None
        and reply.code == 220
        and session.status is SmtpStatus.TLS_ERROR
        and session.error.startswith(LOST_IN_TLS_HANDSHAKE)
    )


def downgrade_signs(
    tlsa_secure: bool, sessions: Sequence[SessionResult]
) -> tuple[DowngradeSign, ...]:
    """The signs one host's sessions show, in the enum's order."""
    offered = {s.starttls_offered for s in sessions} - {None}
    signs = []
    if tlsa_secure and False in offered:
        signs.append(DowngradeSign.TLSA_WITHOUT_STARTTLS)
    if any(starttls_rejected(s) for s in sessions):
        signs.append(DowngradeSign.STARTTLS_REJECTED)
    if offered == {True, False}:
        signs.append(DowngradeSign.STARTTLS_INCONSISTENT)
    return tuple(signs)


def judge_host(
    policy: StsPolicy,
    host: str,
    sessions: Sequence[SessionResult],
    now: dt.datetime,
    store: Store,
) -> HostJudgement:
    """One MX host (``host`` as the MX RRset names it) under ``policy``."""
    if not any(s.chain for s in sessions):
        found = HostJudgement(StsHostStatus.NO_TLS, "no address presented a certificate")
    else:
        found = HostJudgement(StsHostStatus.VALID)
        for session in sessions:
            if not session.chain:
                continue
            checked = check_chain(session.chain, host, now, store)
            if checked.status is not StsHostStatus.VALID:
                found = HostJudgement(checked.status, f"{session.address}: {checked.error}")
                break
    status = host_status(policy.mx, host, found.status)
    if status is StsHostStatus.NOT_ALLOWED:
        return HostJudgement(status, "no mx pattern of the policy matches the host")
    return found


def fetch_wanted(record: StsRecord) -> bool:
    """Only a valid record sends the scan to fetch a policy (RFC 8461 s3.1:
    a sender that finds none, or an invalid one, does no policy discovery)."""
    return record.status is TxtRecordStatus.VALID


NOT_FETCHED = FetchResult(FetchStatus.NOT_FETCHED)
