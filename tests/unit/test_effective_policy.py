"""The effective policy of a sender implementing DANE and MTA-STS (RFC 8461
section 2 precedence, s5 modes; RFC 7672 section 2.2), one row per branch."""

from __future__ import annotations

import pytest

from scanner.effective import (
    Effective,
    EffectiveOutcome,
    EffectivePolicy,
    HostSituation,
    StsSituation,
    effective,
)
from scanner.mtasts.policy import StsHostStatus, StsMode
from scanner.mtasts.record import TxtRecordStatus
from scanner.status import DaneVerdict, DomainVerdict

D, V, H = DaneVerdict, DomainVerdict, StsHostStatus
P, R = EffectivePolicy, EffectiveOutcome
T = TxtRecordStatus

NO_STS = StsSituation()
ENFORCE = StsSituation(T.VALID, StsMode.ENFORCE)
TESTING = StsSituation(T.VALID, StsMode.TESTING)
MODE_NONE = StsSituation(T.VALID, StsMode.NONE)
NOT_FETCHED = StsSituation(T.VALID, None)  # fetch or parse failed: a fact
TRANSIENT = StsSituation(T.VALID, None, transient=True)
TXT_ERROR = StsSituation(T.LOOKUP_ERROR)


def hosts(*pairs: tuple[DaneVerdict, StsHostStatus | None]) -> tuple[HostSituation, ...]:
    return tuple(HostSituation(d, s) for d, s in pairs)


INSECURE = D.NO_DANE_INSECURE
ONE_VALID = hosts((INSECURE, H.VALID))

CASES = [
    # rule 1: the domain's verdict alone
    ("dns error", V.DNS_ERROR, (), ENFORCE, P.UNKNOWN, R.UNKNOWN),
    ("internal error", V.INTERNAL_ERROR, ONE_VALID, ENFORCE, P.UNKNOWN, R.UNKNOWN),
    ("input error", V.INPUT_ERROR, (), NO_STS, P.UNKNOWN, R.UNKNOWN),
    ("nxdomain", V.NXDOMAIN, (), NO_STS, P.UNKNOWN, R.UNKNOWN),
    ("null mx", V.NULL_MX, (), ENFORCE, P.UNKNOWN, R.UNKNOWN),
    ("mx bogus", V.DNSSEC_BOGUS, (), ENFORCE, P.DANE, R.FAIL),
    ("no hosts", V.NO_DANE, (), ENFORCE, P.UNKNOWN, R.UNKNOWN),
    # rule 2, DANE hosts: precedence over MTA-STS (RFC 8461 s2)
    ("dane valid", V.DANE_VALID, hosts((D.PASS, None)), NO_STS, P.DANE, R.PASS),
    (
        "dane valid, sts enforce",
        V.DANE_VALID,
        hosts((D.PASS, H.NOT_ALLOWED)),
        ENFORCE,
        P.DANE,
        R.PASS,
    ),
    (
        "dane fails, sts valid",
        V.DANE_INVALID,
        hosts((D.FAIL_NO_MATCH, H.VALID)),
        ENFORCE,
        P.DANE,
        R.FAIL,
    ),
    ("dane fails, no sts", V.DANE_INVALID, hosts((D.FAIL_CHAIN, None)), NO_STS, P.DANE, R.FAIL),
    ("dane tlsa servfail", V.DANE_INVALID, hosts((D.FAIL_DNS, None)), TESTING, P.DANE, R.FAIL),
    (
        "dane partial: failing host skipped",
        V.DANE_PARTIAL,
        hosts((D.FAIL_NO_TLS, None), (D.PASS, None)),
        NO_STS,
        P.DANE,
        R.PASS,
    ),
    ("dane not tested", V.NOT_TESTED, hosts((D.NOT_TESTED, None)), NO_STS, P.DANE, R.UNKNOWN),
    (
        "dane undetermined",
        V.UNDETERMINED,
        hosts((D.PASS, None), (D.NOT_TESTED, None)),
        NO_STS,
        P.DANE,
        R.UNKNOWN,
    ),
    # rule 2, mixed: DANE on one host, the other falls to MTA-STS or opportunistic
    (
        "mixed, other opportunistic",
        V.DANE_PARTIAL,
        hosts((D.PASS, None), (INSECURE, None)),
        NO_STS,
        P.DANE,
        R.UNAUTHENTICATED,
    ),
    (
        "mixed, other enforce valid",
        V.DANE_PARTIAL,
        hosts((D.PASS, None), (INSECURE, H.VALID)),
        ENFORCE,
        P.DANE,
        R.PASS,
    ),
    (
        "mixed, other enforce fails",
        V.DANE_PARTIAL,
        hosts((D.PASS, None), (D.UNUSABLE, H.EXPIRED)),
        ENFORCE,
        P.DANE,
        R.PASS,
    ),
    (
        "mixed, other testing fails",
        V.DANE_PARTIAL,
        hosts((D.PASS, None), (INSECURE, H.UNTRUSTED)),
        TESTING,
        P.DANE,
        R.REPORT_ONLY,
    ),
    (
        "mixed, sts lookup error",
        V.DANE_PARTIAL,
        hosts((D.PASS, None), (INSECURE, None)),
        TXT_ERROR,
        P.DANE,
        R.UNKNOWN,
    ),
    # rule 2, MTA-STS enforce (s5)
    ("enforce valid", V.NO_DANE, ONE_VALID, ENFORCE, P.MTA_STS_ENFORCE, R.PASS),
    (
        "enforce, secure but no tlsa",
        V.NO_DANE,
        hosts((D.NO_DANE_ABSENT, H.VALID)),
        ENFORCE,
        P.MTA_STS_ENFORCE,
        R.PASS,
    ),
    (
        "enforce, mx not allowed",
        V.NO_DANE,
        hosts((INSECURE, H.NOT_ALLOWED)),
        ENFORCE,
        P.MTA_STS_ENFORCE,
        R.FAIL,
    ),
    (
        "enforce, all fail",
        V.NO_DANE,
        hosts((INSECURE, H.NAME_MISMATCH), (INSECURE, H.NO_TLS)),
        ENFORCE,
        P.MTA_STS_ENFORCE,
        R.FAIL,
    ),
    (
        "enforce, one skipped",
        V.NO_DANE,
        hosts((INSECURE, H.EXPIRED), (INSECURE, H.VALID)),
        ENFORCE,
        P.MTA_STS_ENFORCE,
        R.PASS,
    ),
    (
        "enforce, host not judged",
        V.NO_DANE,
        hosts((INSECURE, H.VALID), (INSECURE, None)),
        ENFORCE,
        P.MTA_STS_ENFORCE,
        R.UNKNOWN,
    ),
    # rule 2, MTA-STS testing (s5)
    ("testing valid", V.NO_DANE, ONE_VALID, TESTING, P.MTA_STS_TESTING, R.PASS),
    (
        "testing fails",
        V.NO_DANE,
        hosts((INSECURE, H.VALID), (INSECURE, H.UNTRUSTED)),
        TESTING,
        P.MTA_STS_TESTING,
        R.REPORT_ONLY,
    ),
    (
        "testing, host not judged",
        V.NO_DANE,
        hosts((INSECURE, None)),
        TESTING,
        P.MTA_STS_TESTING,
        R.UNKNOWN,
    ),
    # rule 2, opportunistic (s3.1, s3.3, s5)
    ("no record", V.NO_DANE, hosts((INSECURE, None)), NO_STS, P.OPPORTUNISTIC, R.UNAUTHENTICATED),
    (
        "implicit mx",
        V.NO_MX_RECORD,
        hosts((INSECURE, None)),
        NO_STS,
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    (
        "invalid record",
        V.NO_DANE,
        ONE_VALID,
        StsSituation(T.INVALID, StsMode.ENFORCE),
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    (
        "multiple records",
        V.NO_DANE,
        ONE_VALID,
        StsSituation(T.MULTIPLE),
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    (
        "mode none",
        V.NO_DANE,
        hosts((INSECURE, H.NOT_ALLOWED)),
        MODE_NONE,
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    (
        "policy not fetched",
        V.NO_DANE,
        hosts((INSECURE, None)),
        NOT_FETCHED,
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    (
        "unusable tlsa, no sts",
        V.DANE_INVALID,
        hosts((D.UNUSABLE, None)),
        NO_STS,
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
    # rule 2: MTA-STS states that are no facts
    ("txt lookup error", V.NO_DANE, ONE_VALID, TXT_ERROR, P.UNKNOWN, R.UNKNOWN),
    ("fetch transient", V.NO_DANE, hosts((INSECURE, None)), TRANSIENT, P.UNKNOWN, R.UNKNOWN),
    # a transient flag without a valid record: no fetch was due, a fact
    (
        "transient, no record",
        V.NO_DANE,
        hosts((INSECURE, None)),
        StsSituation(T.ABSENT, None, True),
        P.OPPORTUNISTIC,
        R.UNAUTHENTICATED,
    ),
]


@pytest.mark.parametrize(
    ("domain", "host_list", "sts", "policy", "outcome"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_effective(
    domain: DomainVerdict,
    host_list: tuple[HostSituation, ...],
    sts: StsSituation,
    policy: EffectivePolicy,
    outcome: EffectiveOutcome,
) -> None:
    result = effective(domain, host_list, sts)
    assert (result.policy, result.outcome) == (policy, outcome)
    assert result.reason.startswith("rule ")


def test_reasons_name_the_mix() -> None:
    mixed = hosts((D.PASS, None), (D.FAIL_NO_MATCH, None), (INSECURE, H.VALID))
    assert effective(V.DANE_PARTIAL, mixed, ENFORCE) == Effective(
        P.DANE, R.PASS, "rule 3: DANE on 2 of 3 hosts, mta_sts_enforce on the others; 1 skipped"
    )
    assert effective(V.NO_DANE, ONE_VALID, TESTING).reason == "rule 3: mta_sts_testing on 1 hosts"


def test_the_vocabulary() -> None:
    assert [p.value for p in EffectivePolicy] == [
        "dane",
        "mta_sts_enforce",
        "mta_sts_testing",
        "opportunistic",
        "unknown",
    ]
    assert [o.value for o in EffectiveOutcome] == [
        "pass",
        "fail",
        "report_only",
        "unauthenticated",
        "unknown",
    ]
