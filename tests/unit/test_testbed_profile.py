"""The internet profile as data: its DNS operators, the pushback of its mail
hosts, the plan that places them, and what --latency-scale changes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections import Counter

import pytest

from scanner.status import DomainVerdict
from testbed.model import Behavior, Pushback
from testbed.plan import Plan, catalogue_for, make_plan
from testbed.profile import (
    DEAD_OPERATORS,
    DELAY_BUDGET,
    LAME_OPERATORS,
    OPERATORS,
    SESSION_DEADLINE_S,
    OperatorKind,
    Profile,
    draw_operators,
    draw_pushback,
    retry_policy,
    scale_pushback,
)

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(n=3000, seed=11, net=43, now=NOW, profile=Profile.INTERNET)


def test_operators_root_registry_then_hosting_by_rank() -> None:
    operators = draw_operators(random.Random(1), net=43)
    assert len(operators) == OPERATORS + 2
    assert [op.name for op in operators[:2]] == ["root", "registry"]
    kinds = Counter(op.kind for op in operators)
    assert kinds[OperatorKind.DEAD] == DEAD_OPERATORS
    assert kinds[OperatorKind.LAME] == LAME_OPERATORS
    assert kinds[OperatorKind.TRUNCATING] == kinds[OperatorKind.RATE_LIMITED] == 1
    addresses = [op.address for op in operators]
    assert len(set(addresses)) == len(addresses)
    assert all(a.startswith(("127.43.253.", "127.43.254.")) for a in addresses)
    hosting = [op for op in operators if op.share > 0]
    assert sum(op.share for op in hosting) == pytest.approx(1.0)
    assert all(op.kind.answers for op in hosting)
    assert not any(op.share for op in operators if not op.kind.answers)
    # Zipf: the two largest hold about 30% of the zones, as the largest two
    # providers do (testbed.profile, source [3]).
    shares = sorted((op.share for op in hosting), reverse=True)
    assert 0.25 < shares[0] + shares[1] < 0.35
    assert all(0.0 <= op.loss <= 0.05 for op in operators)
    assert all(5.0 <= op.median_ms <= 300.0 for op in operators)


def test_pushback_stays_within_the_deadline_budget() -> None:
    rng = random.Random(5)
    draws = [draw_pushback(rng) for _ in range(20_000)]
    budget = DELAY_BUDGET * SESSION_DEADLINE_S
    assert all(p.greeting_delay + p.tls_delay <= budget + 1e-9 for p in draws)
    share = lambda test: sum(1 for p in draws if test(p)) / len(draws)  # noqa: E731
    assert 0.85 < share(lambda p: p.greeting_delay < 1.0) < 0.97
    assert 0.03 < share(lambda p: p.greylist_window is not None) < 0.07
    assert 0.03 < share(lambda p: p.max_per_minute is not None) < 0.07
    assert 0.003 < share(lambda p: p.reset_first_handshake) < 0.02


def test_scaling_pushback_scales_delays_and_keeps_the_rest() -> None:
    pushback = Pushback(
        greeting_delay=2.0,
        greylist_window=300.0,
        max_concurrent=2,
        max_per_minute=30,
        tls_delay=1.5,
        reset_first_handshake=True,
    )
    assert scale_pushback(pushback, 0.5) == Pushback(1.0, 150.0, 2, 30, 0.75, True)
    off = scale_pushback(pushback, 0.0)
    assert (off.greeting_delay, off.greylist_window, off.tls_delay) == (0.0, 0.0, 0.0)
    assert (off.max_concurrent, off.max_per_minute, off.reset_first_handshake) == (2, 30, True)


def test_every_zone_is_on_an_operator(plan: Plan) -> None:
    by_address = {op.address: op for op in plan.operators}
    for zone in plan.zones:
        if zone.lame:
            assert zone.server is None
            continue
        assert zone.server in by_address
        op = by_address[zone.server]
        if zone.origin == ".":
            assert op.name == "root"
        elif zone.origin.count(".") == 1:
            assert op.name == "registry"
        else:
            assert op.name.startswith("op")
    assert plan.root_address == plan.operators[0].address
    assert plan.layer_addresses is not None


def test_faulty_operators_serve_only_the_zones_that_expect_them(plan: Plan) -> None:
    kind_of = {op.address: op.kind for op in plan.operators}
    failing = {t.domain for t in plan.truth if t.scenario in ("dead_operator", "lame_operator")}
    assert failing
    for zone in plan.zones:
        if zone.server is None:
            continue
        answers = kind_of[zone.server].answers
        assert answers == (zone.origin not in failing), zone.origin
    for t in plan.truth:
        if t.domain in failing:
            assert t.verdict is DomainVerdict.DNS_ERROR


def test_unsigned_domains_are_zones_of_their_own(plan: Plan) -> None:
    origins = {z.origin for z in plan.zones}
    unsigned = [t.domain for t in plan.truth if t.scenario == "unsigned_selfhosted"]
    assert unsigned
    assert all(domain in origins for domain in unsigned)


def test_speaking_hosts_push_back_and_failing_ones_keep_their_behaviour(plan: Plan) -> None:
    starttls = [x for x in plan.listeners if x.behavior is Behavior.STARTTLS]
    others = [x for x in plan.listeners if x.behavior is not Behavior.STARTTLS]
    assert all(not x.pushback.is_default for x in starttls)
    assert all(x.pushback.is_default for x in others)
    behaviours = {x.behavior for x in plan.listeners}
    assert {Behavior.TARPIT, Behavior.TLS_RESET} <= behaviours
    for listener in plan.listeners:
        assert ipaddress.ip_address(listener.address).is_loopback


def test_a_small_testbed_has_every_kind_of_pushback() -> None:
    small = make_plan(n=600, seed=2, net=43, now=NOW, profile=Profile.INTERNET)
    pushbacks = [x.pushback for x in small.listeners]
    assert any(p.greeting_delay >= 5.0 for p in pushbacks)
    assert any(p.greylist_window is not None for p in pushbacks)
    assert any(p.max_per_minute is not None for p in pushbacks)
    assert any(p.tls_delay > 0 for p in pushbacks)
    assert any(p.reset_first_handshake for p in pushbacks)
    budget = DELAY_BUDGET * SESSION_DEADLINE_S
    assert all(p.greeting_delay + p.tls_delay <= budget + 1e-9 for p in pushbacks)


def test_internet_scenarios_only_on_the_internet_profile() -> None:
    internet = {s.name for s in catalogue_for(Profile.INTERNET)}
    loopback = {s.name for s in catalogue_for(Profile.LOOPBACK)}
    assert internet - loopback == {
        "dead_operator",
        "lame_operator",
        "tarpit_host",
        "tls_reset_host",
    }
    assert loopback <= internet


def test_latency_scale_zero_removes_the_delays_and_nothing_else(plan: Plan) -> None:
    still = make_plan(n=3000, seed=11, net=43, now=NOW, profile=Profile.INTERNET, latency_scale=0.0)
    assert still.truth == plan.truth
    assert [(z.origin, z.server) for z in still.zones] == [(z.origin, z.server) for z in plan.zones]
    for fast, slow in zip(still.operators, plan.operators, strict=True):
        assert (fast.median_ms, fast.max_ms) == (0.0, 0.0)
        assert (fast.name, fast.address, fast.kind, fast.loss, fast.rate_limit, fast.share) == (
            slow.name,
            slow.address,
            slow.kind,
            slow.loss,
            slow.rate_limit,
            slow.share,
        )
    for fast_host, slow_host in zip(still.listeners, plan.listeners, strict=True):
        assert fast_host.address == slow_host.address
        assert fast_host.behavior is slow_host.behavior
        assert fast_host.pushback == scale_pushback(slow_host.pushback, 0.0)
    assert still.policy == retry_policy(0.0) == retry_policy(1.0)


def test_a_slower_testbed_assumes_a_longer_deadline() -> None:
    assert retry_policy(2.0).session_deadline_s == 2 * retry_policy(1.0).session_deadline_s


@pytest.mark.parametrize("scale", [-1.0, float("nan")])
def test_a_negative_scale_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="latency scale"):
        make_plan(n=600, seed=1, net=43, now=NOW, profile=Profile.INTERNET, latency_scale=scale)


def test_dns_loss_adds_to_every_operators_own_loss() -> None:
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    plain = make_plan(n=300, seed=3, net=9, now=now, profile=Profile.INTERNET)
    lossy = make_plan(n=300, seed=3, net=9, now=now, profile=Profile.INTERNET, dns_loss=0.02)
    for before, after in zip(plain.operators, lossy.operators, strict=True):
        assert after.loss == pytest.approx(1 - (1 - before.loss) * 0.98, abs=1e-6)
        assert after.median_ms == before.median_ms
    assert lossy.truth == plain.truth  # the resolver retries: the verdicts stand
    with pytest.raises(ValueError, match="DNS loss"):
        make_plan(n=10, seed=3, net=9, now=now, profile=Profile.INTERNET, dns_loss=1.0)
