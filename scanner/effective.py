"""The policy a sending MTA that implements both DANE and MTA-STS applies to
a domain, and what happens to its mail (pure).

The rules, in the order they are applied:

1. The domain's DANE verdict first (scanner.status.DomainVerdict):
   ``dns_error``, ``internal_error``, ``input_error``: the inputs are no
   facts, so ``unknown``/``unknown``. ``nxdomain`` and ``null_mx``: no mail
   exchange to apply a policy to (RFC 7505 for null MX): also
   ``unknown``/``unknown``, with the reason saying so. ``dnssec_bogus``: a
   validating sender cannot use the MX RRset and does not deliver (RFC 7672
   section 2.1.1: a bogus answer is a failure, never treated as insecure):
   ``dane``/``fail``.
2. Every other domain is decided host by host, as a sender tries MX hosts
   in turn (RFC 5321 section 5.1):
   - DANE applies to a host when its TLSA RRset is secure and usable (RFC
     7672 section 2.2; DaneVerdict ``pass``, a ``fail_*``, or ``not_tested``).
     It takes precedence (RFC 8461 section 2): ``pass`` is authenticated
     delivery; a ``fail_*`` host is skipped, whatever MTA-STS says of it,
     since MTA-STS must not override a failing DANE validation (s2);
     ``not_tested`` is unknown.
   - To any other host (``no_dane_*``; ``unusable``, whose TLSA records
     give nothing to authenticate with, RFC 7672 section 3.1) the MTA-STS
     policy applies, if the domain has one: a valid ``_mta-sts`` record
     (RFC 8461 s3.1) and a policy fetched and parsed (s3.2, s3.3) whose
     mode is enforce or testing. Under enforce (s5) a host whose
     StsHostStatus is ``valid`` takes authenticated delivery and any other
     is skipped; under testing (s5) a ``valid`` host is authenticated
     delivery and any other is delivered to anyway, the failure reported
     (``report_only``). A host with no StsHostStatus is unknown.
   - Otherwise the host gets opportunistic TLS (RFC 3207 as RFC 7435 uses
     it): ``unauthenticated``. That covers no record, an invalid or
     multiple record (s3.1: the sender skips policy discovery), a policy
     that could not be fetched or parsed (s3.3, s5.1: deliver as though
     the domain had no policy; a first-contact sender has no cached one),
     and mode none (s5: as though there were no policy).
   - An MTA-STS state that is not a fact (the TXT lookup failed, or the
     fetch failed transiently) leaves every host it would decide unknown.
3. The domain's outcome: ``unknown`` if any host is; ``fail`` when every
   host is skipped (nothing to deliver to); otherwise the worst of the
   hosts a sender may deliver to, ``unauthenticated`` < ``report_only`` <
   ``pass``, since equal preferences are picked at random and an
   unreachable host is passed over (the scanner's rule for DANE hosts in
   scanner.assemble, too). Reachability itself is not judged here.
4. The domain's policy: ``dane`` when DANE applies to any host (the
   reason says when other hosts fall under MTA-STS or opportunistic TLS);
   otherwise ``mta_sts_enforce``/``mta_sts_testing`` when such a policy
   applies, ``unknown`` when the MTA-STS state is not a fact, else
   ``opportunistic``. A domain with no hosts is ``unknown``.

The per-host DANE verdicts may be the strict ones or those of a sender
that uses TLSA records under an insecure MX RRset (RFC 7672 s2.2.1): the
rule is the same, the caller chooses the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from scanner.mtasts.policy import StsHostStatus, StsMode
from scanner.mtasts.record import TxtRecordStatus
from scanner.status import DaneVerdict, DomainVerdict


class EffectivePolicy(StrEnum):
    DANE = "dane"
    MTA_STS_ENFORCE = "mta_sts_enforce"
    MTA_STS_TESTING = "mta_sts_testing"
    OPPORTUNISTIC = "opportunistic"
    UNKNOWN = "unknown"  # the inputs are not facts


class EffectiveOutcome(StrEnum):
    PASS = "pass"  # delivered over authenticated TLS
    FAIL = "fail"  # a sender following the policy does not deliver
    REPORT_ONLY = "report_only"  # testing mode failed: delivered, failure reported
    UNAUTHENTICATED = "unauthenticated"  # opportunistic: TLS if offered, not authenticated
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StsSituation:
    """The domain's MTA-STS state. ``mode`` is the mode of a policy that was
    fetched and parsed (None when there is none); ``transient``: the fetch
    failed in a way that may differ if tried again (not a fact)."""

    record: TxtRecordStatus = TxtRecordStatus.ABSENT
    mode: StsMode | None = None
    transient: bool = False


@dataclass(frozen=True, slots=True)
class HostSituation:
    """One MX host: its DANE verdict and, when the domain's policy judged it,
    its StsHostStatus (None: not judged, e.g. not contacted)."""

    dane: DaneVerdict
    sts: StsHostStatus | None = None


@dataclass(frozen=True, slots=True)
class Effective:
    policy: EffectivePolicy
    outcome: EffectiveOutcome
    reason: str


_NOT_FACTS = (DomainVerdict.DNS_ERROR, DomainVerdict.INTERNAL_ERROR, DomainVerdict.INPUT_ERROR)
_NO_MAIL = (DomainVerdict.NXDOMAIN, DomainVerdict.NULL_MX)
_DANE_APPLIES = (DaneVerdict.PASS, DaneVerdict.NOT_TESTED)
# Worst first, among the outcomes of hosts a sender may deliver to.
_ORDER = (EffectiveOutcome.UNAUTHENTICATED, EffectiveOutcome.REPORT_ONLY, EffectiveOutcome.PASS)


def _dane_applies(verdict: DaneVerdict) -> bool:
    return verdict in _DANE_APPLIES or verdict.is_failure


def _sts_policy(sts: StsSituation) -> EffectivePolicy:
    """The policy MTA-STS gives hosts DANE does not cover (rule 2)."""
    if sts.record is TxtRecordStatus.LOOKUP_ERROR or (
        sts.record is TxtRecordStatus.VALID and sts.transient
    ):
        return EffectivePolicy.UNKNOWN
    if sts.record is TxtRecordStatus.VALID and sts.mode is StsMode.ENFORCE:
        return EffectivePolicy.MTA_STS_ENFORCE
    if sts.record is TxtRecordStatus.VALID and sts.mode is StsMode.TESTING:
        return EffectivePolicy.MTA_STS_TESTING
    return EffectivePolicy.OPPORTUNISTIC


def _host(host: HostSituation, sts: EffectivePolicy) -> EffectiveOutcome | None:
    """What a sender does with one host: an outcome, or None (skipped)."""
    if _dane_applies(host.dane):
        if host.dane is DaneVerdict.NOT_TESTED:
            return EffectiveOutcome.UNKNOWN
        return EffectiveOutcome.PASS if host.dane is DaneVerdict.PASS else None
    if sts is EffectivePolicy.UNKNOWN:
        return EffectiveOutcome.UNKNOWN
    if sts is EffectivePolicy.OPPORTUNISTIC:
        return EffectiveOutcome.UNAUTHENTICATED
    if host.sts is None:
        return EffectiveOutcome.UNKNOWN
    if host.sts is StsHostStatus.VALID:
        return EffectiveOutcome.PASS
    return None if sts is EffectivePolicy.MTA_STS_ENFORCE else EffectiveOutcome.REPORT_ONLY


def effective(
    domain: DomainVerdict, hosts: Sequence[HostSituation], sts: StsSituation
) -> Effective:
    """The effective policy of a domain and its outcome (rules in the module
    docstring, numbered as there)."""
    if domain in _NOT_FACTS:
        return Effective(
            EffectivePolicy.UNKNOWN, EffectiveOutcome.UNKNOWN, f"rule 1: {domain.value}"
        )
    if domain in _NO_MAIL:
        return Effective(
            EffectivePolicy.UNKNOWN,
            EffectiveOutcome.UNKNOWN,
            f"rule 1: no mail exchange ({domain.value})",
        )
    if domain is DomainVerdict.DNSSEC_BOGUS:
        return Effective(EffectivePolicy.DANE, EffectiveOutcome.FAIL, "rule 1: MX RRset bogus")
    if not hosts:
        return Effective(EffectivePolicy.UNKNOWN, EffectiveOutcome.UNKNOWN, "rule 4: no MX host")
    sts_policy = _sts_policy(sts)
    outcomes = [_host(h, sts_policy) for h in hosts]
    dane = sum(1 for h in hosts if _dane_applies(h.dane))
    if dane:
        policy = EffectivePolicy.DANE
        reason = f"DANE on {dane} of {len(hosts)} hosts"
        if dane < len(hosts):
            reason += f", {sts_policy.value} on the others"
    else:
        policy, reason = sts_policy, f"{sts_policy.value} on {len(hosts)} hosts"
    if EffectiveOutcome.UNKNOWN in outcomes:
        return Effective(policy, EffectiveOutcome.UNKNOWN, f"rule 3: {reason}; a host is unknown")
    delivered = [o for o in outcomes if o is not None]
    if not delivered:
        return Effective(policy, EffectiveOutcome.FAIL, f"rule 3: {reason}; every host is skipped")
    worst = min(delivered, key=_ORDER.index)
    skipped = len(outcomes) - len(delivered)
    if skipped:
        reason += f"; {skipped} skipped"
    return Effective(policy, worst, f"rule 3: {reason}")
