"""The managed Unbound against a small internet-profile testbed of its own.

A dead operator's domain gets its SERVFAIL within the bound managed.py
documents (``dead_address_bound``: the testbed's zones have one name server
address) and well within the scanner's DNS wait, so the scan records what the
resolver concluded rather than a client timeout; asking again is answered at
once. A lame operator's domain fails faster still, signed domains come back
with AD and unsigned ones without, and more questions waiting at once than
Unbound's default wait-limit are all answered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.resolve.client import DnsAnswer, DnsClient, ResolverSettings
from scanner.resolve.managed import managed_unbound
from scanner.resolve.message import RdType
from scanner.resolve.unbound_conf import UNKNOWN_SERVER_MS, dead_address_bound, total_wait
from scanner.status import DnsOutcome
from testbed.profile import Profile
from tests.integration.support import Testbed, module_testbed

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

NET = 84  # a loopback net of its own (the session testbed is on 250)
DOMAINS = 150  # the smallest testbed has one domain of each faulty kind
SEED = 9
# Unbound's timers and two event loops on a busy machine add a little.
SLACK = 0.25
# More than Unbound's default wait-limit (1000 replies per client address).
WAITING = 1200


internet = module_testbed("managed", net=NET, domains=DOMAINS, seed=SEED, profile=Profile.INTERNET)


def start(internet: Testbed) -> contextlib.AbstractContextManager[str]:
    return managed_unbound(
        Path(str(internet.state["trust_anchor"])), Path(str(internet.state["root_hints"]))
    )


@pytest.fixture(scope="module")
def resolver(internet: Testbed) -> Iterator[str]:
    with start(internet) as server:
        yield server


def ask(settings: ResolverSettings, name: str, rdtype: RdType) -> DnsAnswer:
    async def run() -> DnsAnswer:
        async with DnsClient(settings) as client:
            return await client.query(name, rdtype)

    return asyncio.run(run())


def domain_of(internet: Testbed, scenario: str) -> str:
    return str(internet.by_scenario(scenario)[0]["domain"])


def test_a_dead_operators_domain_fails_within_the_bound(internet: Testbed, resolver: str) -> None:
    settings = ResolverSettings(servers=(resolver,))  # the scanner's own timing
    domain = domain_of(internet, "dead_operator")
    answer = ask(settings, domain, RdType.MX)
    assert answer.outcome is DnsOutcome.SERVFAIL, answer.error
    # Unbound waited through its doubling timeouts, and no longer than the bound.
    assert 3 * UNKNOWN_SERVER_MS / 1000 < answer.elapsed < dead_address_bound() + SLACK
    assert answer.elapsed < total_wait(settings.timeout, settings.retries, settings.backoff)
    # The address stays down for the zone (infra-host-ttl): answered without
    # waiting for it again (a fraction of the first wait, whatever the load).
    for name in (domain, f"mx.{domain}"):
        again = ask(settings, name, RdType.MX)
        assert again.outcome is DnsOutcome.SERVFAIL
        assert again.elapsed < answer.elapsed / 2


def test_a_lame_operators_domain_fails_sooner(internet: Testbed, resolver: str) -> None:
    settings = ResolverSettings(servers=(resolver,))
    answer = ask(settings, domain_of(internet, "lame_operator"), RdType.MX)
    assert answer.outcome is DnsOutcome.SERVFAIL, answer.error
    assert answer.elapsed < dead_address_bound()


def test_signed_domains_have_ad_and_unsigned_ones_do_not(internet: Testbed, resolver: str) -> None:
    settings = ResolverSettings(servers=(resolver,))
    signed = internet.by_scenario("ee_311")[0]
    mx = ask(settings, str(signed["domain"]), RdType.MX)
    assert mx.outcome is DnsOutcome.ANSWER, mx.error
    assert mx.ad
    hosts = signed["mx_hosts"]
    assert isinstance(hosts, list)
    host = str(hosts[0]["host"])
    tlsa = ask(settings, f"_25._tcp.{host}", RdType.TLSA)
    assert tlsa.outcome is DnsOutcome.ANSWER, tlsa.error
    assert tlsa.ad
    unsigned = ask(settings, domain_of(internet, "unsigned_provider"), RdType.MX)
    assert unsigned.outcome is DnsOutcome.ANSWER, unsigned.error
    assert not unsigned.ad


def test_more_waiting_questions_than_the_default_wait_limit_are_answered(
    internet: Testbed,
) -> None:
    """Every question of a scan comes from 127.0.0.1; with Unbound's default
    wait-limit those beyond 1000 would be dropped unanswered."""
    dead = domain_of(internet, "dead_operator")
    with start(internet) as server:  # a cold cache: the dead zone not known yet
        settings = ResolverSettings(
            servers=(server,), timeout=2 * dead_address_bound(), retries=0,
            max_in_flight=WAITING,
        )  # fmt: skip

        async def run() -> list[DnsAnswer]:
            async with DnsClient(settings) as client:
                futures = [client.ask(f"q{i}.{dead}", RdType.A) for i in range(WAITING)]
                return list(await asyncio.gather(*futures))

        answers = asyncio.run(run())
    # A question Unbound dropped would have timed out (the client waits twice
    # the give-up bound, and asks once): every one was answered.
    outcomes = collections.Counter(answer.outcome for answer in answers)
    assert outcomes == {DnsOutcome.SERVFAIL: WAITING}
