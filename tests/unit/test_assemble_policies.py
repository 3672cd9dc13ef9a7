"""Assembling what a domain publishes beside DANE (scanner.assemble with
scanner.mailpolicy and scanner.effective): MTA-STS hosts judged by their
chains, the effective policy, REQUIRETLS, downgrade signs, --days-ahead."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import Store

from scanner.assemble import Observation, assemble, match_jobs, tls_targets
from scanner.config import StartTlsMode
from scanner.effective import EffectiveOutcome, EffectivePolicy
from scanner.handshake.session import SessionResult
from scanner.handshake.smtp import Reply, Transcript
from scanner.mailpolicy import DowngradeSign, Policies, StsObservation
from scanner.match.outcome import MatchResult
from scanner.mtasts.pkix import load_trust_store
from scanner.mtasts.policy import StsHostStatus, StsMode, StsPolicy
from scanner.mtasts.record import StsRecord, TxtRecordStatus
from scanner.mtasts.response import FetchResult, FetchStatus
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict, SmtpStatus
from scanner.tlsrpt import TlsRptRecord
from tests.unit.resolutions import RECORD, dane_host, insecure_host, resolution
from tests.unit.test_mtasts_pkix import INTER, NOW, ROOT, der, leaf

MX1, MX2 = "mx1.a.example.", "mx2.a.example."
A1, A2 = "192.0.2.1", "192.0.2.2"
CHAIN = der(leaf("mx1.a.example", "mx2.a.example"), INTER)
PASS = MatchResult(DaneVerdict.PASS, RECORD, 0, "3 1 1 matched", 0)
EXPIRED = MatchResult(DaneVerdict.FAIL_TA_EXPIRED, None, -1, "expired", 10)


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("roots") / "root.pem"
    path.write_bytes(ROOT.public_bytes(serialization.Encoding.PEM))
    return load_trust_store([path], system=None)


def policies(mode: StsMode = StsMode.ENFORCE, mx: tuple[str, ...] = ("*.a.example",)) -> Policies:
    return Policies(
        StsObservation(
            StsRecord(TxtRecordStatus.VALID, "1"),
            FetchResult(FetchStatus.OK, body="..."),
            StsPolicy(True, mode, 86400, mx),
        ),
        TlsRptRecord(TxtRecordStatus.VALID, ("mailto:tls@a.example",)),
    )


def session(address: str, *, requiretls: bool = False) -> SessionResult:
    over_tls = ("mx", "REQUIRETLS") if requiretls else ("mx",)
    transcript = Transcript(
        banner=Reply(220, ("hi",)),
        ehlo=Reply(250, ("mx", "STARTTLS")),
        starttls=Reply(220, ("go",)),
        ehlo_tls=Reply(250, over_tls),
    )
    return SessionResult(address, 25, "sni", SmtpStatus.TLS_OK, "", transcript, chain=CHAIN)


def observed(p: Policies | None) -> Observation:
    """mx1 publishes DANE, mx2 does not; both present CHAIN."""
    obs = Observation(1, "a.example", 0.0, NOW)
    obs.resolved(resolution("a.example.", dane_host(MX1, A1), insecure_host(MX2, A2)), 4)
    obs.policies = p
    obs.sessions = {(MX1, A1): session(A1, requiretls=True), (MX2, A2): session(A2)}
    return obs


def test_dane_first_mta_sts_for_the_other_host(trust: Store) -> None:
    result = assemble(observed(policies()), {(MX1, A1): PASS}, tested=True, now=0.0, trust=trust)
    assert result.verdict is DomainVerdict.DANE_PARTIAL  # mx2 has no DANE
    mx1, mx2 = result.hosts
    assert mx1.sts is not None
    assert mx2.sts is not None
    assert (mx1.sts.status, mx2.sts.status) == (StsHostStatus.VALID, StsHostStatus.VALID)
    assert (mx1.requiretls, mx2.requiretls) == (True, False)
    assert (mx1.downgrade, mx2.downgrade) == ((), ())
    assert result.effective is not None
    assert (result.effective.policy, result.effective.outcome) == (
        EffectivePolicy.DANE,
        EffectiveOutcome.PASS,
    )


def test_a_host_outside_the_patterns_is_skipped_under_enforce(trust: Store) -> None:
    obs = observed(policies(mx=("mx1.a.example",)))
    result = assemble(obs, {(MX1, A1): PASS}, tested=True, now=0.0, trust=trust)
    assert result.hosts[1].sts is not None
    assert result.hosts[1].sts.status is StsHostStatus.NOT_ALLOWED
    assert result.effective is not None
    assert result.effective.outcome is EffectiveOutcome.PASS  # mx1 by DANE; mx2 skipped
    assert "1 skipped" in result.effective.reason


def test_without_policy_lookups_nothing_beside_dane_is_claimed(trust: Store) -> None:
    result = assemble(observed(None), {(MX1, A1): PASS}, tested=True, now=0.0, trust=trust)
    assert result.effective is None
    assert [h.sts for h in result.hosts] == [None, None]
    # Sessions still tell REQUIRETLS and downgrade signs.
    assert result.hosts[0].requiretls is True


def test_days_ahead_rematches_and_rejudges_the_chains(trust: Store) -> None:
    obs = observed(policies())
    result = assemble(
        obs,
        {(MX1, A1): PASS},
        tested=True,
        now=0.0,
        trust=trust,
        days_ahead=30,
        matches_ahead={(MX1, A1): EXPIRED},
    )
    assert result.days_ahead == 30
    assert result.verdict_ahead is DomainVerdict.DANE_INVALID
    assert [h.verdict_ahead for h in result.hosts] == [
        DaneVerdict.FAIL_TA_EXPIRED,
        DaneVerdict.NO_DANE_INSECURE,
    ]
    assert result.effective_ahead is not None
    # The test leaf lives ten days: in thirty, mx2's chain is expired too.
    assert result.effective_ahead.outcome is EffectiveOutcome.FAIL
    assert result.hosts[1].sts is not None
    assert result.hosts[1].sts.status is StsHostStatus.VALID  # today's judgement kept


def test_a_valid_record_sends_the_dane_mode_to_every_host() -> None:
    obs = observed(policies())
    obs.sessions = {}
    assert [t.host for t in tls_targets(obs, StartTlsMode.DANE)] == [MX1, MX2]
    obs.policies = replace(policies(), sts=StsObservation(StsRecord(TxtRecordStatus.ABSENT)))
    assert [t.host for t in tls_targets(obs, StartTlsMode.DANE)] == [MX1]


def test_tlsa_without_starttls_is_a_downgrade_sign(trust: Store) -> None:
    obs = observed(policies())
    plain = SessionResult(
        A1, 25, "sni", SmtpStatus.NO_STARTTLS, "", Transcript(ehlo=Reply(250, ("mx",)))
    )
    obs.sessions[(MX1, A1)] = plain
    result = assemble(obs, {}, tested=True, now=0.0, trust=trust)
    assert result.hosts[0].downgrade == (DowngradeSign.TLSA_WITHOUT_STARTTLS,)
    assert result.hosts[0].sts is not None
    assert result.hosts[0].sts.status is StsHostStatus.NO_TLS


def test_insecure_mx_secure_provider_tlsa_gets_a_relaxed_verdict(trust: Store) -> None:
    """RFC 7672 s2.2.1: an unsigned domain hosted at a DANE provider."""
    obs = Observation(1, "a.example", 0.0, NOW)
    obs.resolved(resolution("a.example.", dane_host(MX1, A1), mx=DnssecStatus.INSECURE), 4)
    # The strict reading needs no chain, the relaxed one does: contacted, matched.
    assert [t.host for t in tls_targets(obs, StartTlsMode.DANE)] == [MX1]
    obs.sessions = {(MX1, A1): session(A1)}
    assert [key for key, _ in match_jobs(obs)] == [(MX1, A1)]
    result = assemble(obs, {(MX1, A1): PASS}, tested=True, now=0.0, trust=trust)
    assert result.verdict is DomainVerdict.NO_DANE
    assert result.verdict_relaxed is DomainVerdict.DANE_VALID
    host = result.hosts[0]
    assert (host.verdict, host.verdict_relaxed) == (DaneVerdict.NO_DANE_INSECURE, DaneVerdict.PASS)
    failing = assemble(obs, {(MX1, A1): EXPIRED}, tested=True, now=0.0, trust=trust)
    assert failing.verdict_relaxed is DomainVerdict.DANE_INVALID


def test_a_secure_mx_has_one_reading(trust: Store) -> None:
    result = assemble(observed(policies()), {(MX1, A1): PASS}, tested=True, now=0.0, trust=trust)
    assert result.verdict_relaxed is result.verdict
    assert [h.verdict_relaxed for h in result.hosts] == [h.verdict for h in result.hosts]
