"""The resolver's health machine (scanner.resolve.health): an outage told
apart from the domains' own failures, with time passed in."""

from __future__ import annotations

import pytest

from scanner.resolve.answer import is_transient
from scanner.resolve.health import Health, HealthSettings, Outage, ResolverHealth
from scanner.status import DnsOutcome

SETTINGS = HealthSettings(probe_interval=2.0, down_probe_interval=1.0, patience=30.0)


def test_answers_keep_it_up_and_judged() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    for step in range(1, 10):
        assert not health.tick(answered=100, failed=3, now=step * 0.5)  # a few dead zones
        assert health.state is Health.UP
        assert health.evaluated == step * 0.5
    assert health.outages == 0


def test_failures_without_answers_are_probed_and_a_working_probe_clears_them() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    assert health.tick(answered=0, failed=1, now=0.5)  # one dead zone at a low rate
    assert health.state is Health.SUSPECT
    assert health.evaluated == 0.0  # not judged until the probe says
    assert not health.tick(answered=0, failed=1, now=1.0)  # a probe is under way
    health.probed(working=True, now=1.2)
    assert health.state is Health.UP
    assert health.evaluated == 1.2
    assert health.outages == 0
    assert not health.overlaps(0.0, 2.0)
    # Probes stay apart by probe_interval while the failures go on.
    assert not health.tick(answered=0, failed=1, now=1.5)
    assert health.tick(answered=0, failed=1, now=2.6)


def test_a_failed_probe_is_an_outage_from_the_last_answer_until_a_probe_works() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    health.tick(answered=50, failed=0, now=10.0)
    assert health.tick(answered=0, failed=40, now=10.5)
    health.probed(working=False, now=12.0)
    assert health.state is Health.DOWN
    assert health.current == Outage(10.0, None)
    assert health.outages == 1
    # During the outage: a probe every down_probe_interval.
    assert health.tick(answered=0, failed=0, now=12.5)
    health.probed(working=False, now=12.6)
    assert not health.tick(answered=0, failed=0, now=13.0)
    assert health.tick(answered=0, failed=0, now=13.6)
    health.probed(working=True, now=14.0)
    assert health.state is Health.UP
    assert health.current is None
    assert health.outages == 1
    # A lookup that ran across the outage was spoilt by it; one after it was not.
    assert health.overlaps(9.0, 10.2)
    assert health.overlaps(13.0, 13.5)
    assert health.overlaps(13.9, 16.0)
    assert not health.overlaps(5.0, 9.9)
    assert not health.overlaps(14.1, 16.0)


def test_a_resolver_that_answers_servfail_to_nearly_everything_is_probed() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    assert health.tick(answered=2, failed=200, now=0.5)
    health.probed(working=False, now=0.7)
    assert health.state is Health.DOWN


def test_a_few_failures_among_answers_are_no_suspicion() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    assert not health.tick(answered=2, failed=10, now=0.5)  # below min_failures
    assert not health.tick(answered=100, failed=50, now=1.0)  # below failure_share


def test_an_outage_beyond_the_patience_loses_the_resolver() -> None:
    health = ResolverHealth(SETTINGS, now=0.0)
    health.tick(answered=5, failed=0, now=1.0)
    health.tick(answered=0, failed=5, now=1.5)
    health.probed(working=False, now=2.0)
    assert not health.lost(now=30.0)
    assert health.lost(now=31.5)
    health.probed(working=True, now=32.0)
    assert not health.lost(now=40.0)


@pytest.mark.parametrize(
    ("outcome", "ede", "transient"),
    [
        (DnsOutcome.TIMEOUT, None, True),
        (DnsOutcome.REFUSED, None, True),
        (DnsOutcome.TRUNCATED, None, True),
        (DnsOutcome.SERVFAIL, None, True),
        (DnsOutcome.SERVFAIL, 22, True),  # No Reachable Authority: not validation
        (DnsOutcome.SERVFAIL, 6, False),  # DNSSEC Bogus: a fact
        (DnsOutcome.SERVFAIL, 12, False),  # NSEC Missing
        (DnsOutcome.ANSWER, None, False),
        (DnsOutcome.NODATA, None, False),
        (DnsOutcome.NXDOMAIN, None, False),
        (DnsOutcome.MALFORMED, None, False),
    ],
)
def test_transient_dns_outcomes(outcome: DnsOutcome, ede: int | None, transient: bool) -> None:
    assert is_transient(outcome, ede) is transient


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        HealthSettings(patience=0)
    with pytest.raises(ValueError, match="failure_share"):
        HealthSettings(patience=30.0, failure_share=1.5)
