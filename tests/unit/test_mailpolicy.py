"""scanner.mailpolicy: an MTA-STS policy applied to a host's sessions,
REQUIRETLS, downgrade signs; tables of sessions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import Store

from scanner.handshake.session import LOST_IN_TLS_HANDSHAKE, SessionResult
from scanner.handshake.smtp import Reply, Transcript
from scanner.mailpolicy import (
    DowngradeSign,
    HostJudgement,
    StsObservation,
    downgrade_signs,
    judge_host,
    requiretls_offered,
    starttls_rejected,
)
from scanner.mtasts.pkix import load_trust_store
from scanner.mtasts.policy import StsHostStatus, StsMode, StsPolicy
from scanner.mtasts.record import StsRecord, TxtRecordStatus
from scanner.mtasts.response import FetchResult, FetchStatus
from scanner.status import SmtpStatus
from tests.unit.test_mtasts_pkix import DAY, INTER, NOW, ROOT, der, leaf

EHLO = Reply(250, ("mx.example.com", "PIPELINING", "STARTTLS"))
EHLO_PLAIN = Reply(250, ("mx.example.com", "PIPELINING"))
EHLO_TLS = Reply(250, ("mx.example.com", "PIPELINING"))
EHLO_TLS_REQUIRETLS = Reply(250, ("mx.example.com", "PIPELINING", "REQUIRETLS"))
READY = Reply(220, ("ready",))


def session(
    status: SmtpStatus = SmtpStatus.TLS_OK,
    *,
    address: str = "192.0.2.1",
    chain: tuple[bytes, ...] = (),
    ehlo: Reply | None = EHLO,
    starttls: Reply | None = READY,
    ehlo_tls: Reply | None = None,
    error: str = "",
) -> SessionResult:
    transcript = Transcript(
        banner=Reply(220, ("hi",)), ehlo=ehlo, starttls=starttls, ehlo_tls=ehlo_tls
    )
    return SessionResult(address, 25, "mx.example.com", status, error, transcript, chain=chain)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(None, None), (EHLO_TLS, False), (EHLO_TLS_REQUIRETLS, True)],
)
def test_requiretls_counts_only_the_reply_over_tls(
    reply: Reply | None, expected: bool | None
) -> None:
    assert requiretls_offered(session(ehlo_tls=reply)) is expected
    # Offered in plaintext only: nothing a sender can rely on.
    plain = Reply(250, ("mx", "REQUIRETLS", "STARTTLS"))
    assert requiretls_offered(session(ehlo=plain, ehlo_tls=reply)) is expected


DROPPED = f"{LOST_IN_TLS_HANDSHAKE}: reset"
REJECTED = [
    ("refused with 421",
     session(SmtpStatus.STARTTLS_REFUSED, starttls=Reply(421, ("busy",))), True),
    ("dropped after 220", session(SmtpStatus.TLS_ERROR, error=DROPPED), True),
    ("TLS alert after 220", session(SmtpStatus.TLS_ERROR, error="HANDSHAKE_FAILURE"), False),
    ("dropped, no STARTTLS reply",
     session(SmtpStatus.TLS_ERROR, starttls=None, error=DROPPED), False),
    ("fine", session(), False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "s", "expected"), REJECTED, ids=[r[0] for r in REJECTED])
def test_starttls_rejected(case: str, s: SessionResult, expected: bool) -> None:
    assert starttls_rejected(s) is expected


D = DowngradeSign
OFFERS, NO_OFFER = session(), session(SmtpStatus.NO_STARTTLS, ehlo=EHLO_PLAIN, starttls=None)
SIGNS = [
    ("all offer", True, [OFFERS, OFFERS], ()),
    ("secure TLSA, none offers", True, [NO_OFFER], (D.TLSA_WITHOUT_STARTTLS,)),
    ("no TLSA, none offers", False, [NO_OFFER], ()),
    ("one of two offers", False, [OFFERS, NO_OFFER], (D.STARTTLS_INCONSISTENT,)),
    ("one of two, secure TLSA", True, [NO_OFFER, OFFERS],
     (D.TLSA_WITHOUT_STARTTLS, D.STARTTLS_INCONSISTENT)),
    ("refused", False, [REJECTED[0][1]], (D.STARTTLS_REJECTED,)),
    ("no EHLO reply at all", True, [session(SmtpStatus.CONNECT_TIMEOUT, ehlo=None)], ()),
    ("no sessions", True, [], ()),
]  # fmt: skip


@pytest.mark.parametrize(("case", "tlsa", "sessions", "signs"), SIGNS, ids=[s[0] for s in SIGNS])
def test_downgrade_signs(
    case: str, tlsa: bool, sessions: list[SessionResult], signs: tuple[DowngradeSign, ...]
) -> None:
    assert downgrade_signs(tlsa, sessions) == signs


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("roots") / "root.pem"
    path.write_bytes(ROOT.public_bytes(serialization.Encoding.PEM))
    return load_trust_store([path], system=None)


POLICY = StsPolicy(True, StsMode.ENFORCE, 86400, ("mx.example.com", "*.example.net"))
GOOD = der(leaf("mx.example.com", "mx1.example.net"), INTER)
EXPIRED = der(leaf("mx.example.com", days=(-20, -1)), INTER)
S = StsHostStatus
HOSTS = [
    ("valid", "mx.example.com.", [session(chain=GOOD)], S.VALID),
    ("wildcard pattern", "mx1.example.net.", [session(chain=GOOD)], S.VALID),
    ("not in the policy", "mx.example.org.", [session(chain=GOOD)], S.NOT_ALLOWED),
    ("no chain", "mx.example.com.", [NO_OFFER], S.NO_TLS),
    ("not in the policy, no chain", "mx.example.org.", [NO_OFFER], S.NOT_ALLOWED),
    ("one address expired", "mx.example.com.",
     [session(chain=GOOD), session(address="192.0.2.2", chain=EXPIRED)], S.EXPIRED),
    ("one address without TLS, one valid", "mx.example.com.", [NO_OFFER, session(chain=GOOD)],
     S.VALID),
]  # fmt: skip


@pytest.mark.parametrize(("case", "host", "sessions", "status"), HOSTS, ids=[h[0] for h in HOSTS])
def test_a_host_under_a_policy(
    case: str, host: str, sessions: list[SessionResult], status: StsHostStatus, store: Store
) -> None:
    judged = judge_host(POLICY, host, sessions, NOW, store)
    assert judged.status is status
    assert (judged.error == "") is (status is S.VALID)


def test_days_ahead_is_a_later_now(store: Store) -> None:
    sessions = [session(chain=GOOD)]
    assert judge_host(POLICY, "mx.example.com.", sessions, NOW, store) == HostJudgement(S.VALID)
    later = judge_host(POLICY, "mx.example.com.", sessions, NOW + 30 * DAY, store)
    assert later.status is S.EXPIRED  # the test leaves live ten days


@pytest.mark.parametrize(
    ("record", "fetch", "policy", "applies", "transient"),
    [
        (TxtRecordStatus.VALID, FetchStatus.OK, POLICY, True, False),
        (TxtRecordStatus.VALID, FetchStatus.OK, StsPolicy(False, error="bad"), False, False),
        (TxtRecordStatus.INVALID, None, None, False, False),
        (TxtRecordStatus.LOOKUP_ERROR, None, None, False, True),
        (TxtRecordStatus.VALID, FetchStatus.TIMEOUT, None, False, True),
        (TxtRecordStatus.VALID, FetchStatus.REDIRECT, None, False, False),
    ],
)
def test_what_a_sender_applies(
    record: TxtRecordStatus,
    fetch: FetchStatus | None,
    policy: StsPolicy | None,
    applies: bool,
    transient: bool,
) -> None:
    result = None
    if fetch is not None:
        result = FetchResult(fetch, transient=fetch is FetchStatus.TIMEOUT)
    observed = StsObservation(StsRecord(record, "20260101"), result, policy)
    assert (observed.applies is not None) is applies
    assert observed.transient is transient
