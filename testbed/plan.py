"""From (seed, N) to the whole simulated internet as data: zones, listeners,
certificate chains and the expected verdict of every domain.

Deterministic for a given seed and N: the same domains, the same scenarios in
the same order, the same zones and addresses (certificate bytes aside, since
RSA keys and ECDSA signatures are randomised; see testbed.pki).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from testbed.builder import Builder, DomainTruth
from testbed.model import Listener, Zone
from testbed.pki import Issued
from testbed.scenarios import CATALOGUE, Scenario


@dataclass(frozen=True, slots=True)
class PostfixPlan:
    address: str
    hostname: str
    chain_id: str


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    net: int
    zones: tuple[Zone, ...]
    listeners: tuple[Listener, ...]
    chains: dict[str, list[Issued]]
    truth: tuple[DomainTruth, ...]
    postfix: PostfixPlan
    auth_address: str
    resolver_address: str
    lame_address: str

    @property
    def domains(self) -> list[str]:
        return [t.domain.rstrip(".") for t in self.truth]


def scenario_counts(n: int, catalogue: Sequence[Scenario] = CATALOGUE) -> dict[str, int]:
    """How many domains each scenario gets: rare ones at least their minimum,
    the bulk scenarios share what is left in proportion to their weights."""
    counts = {s.name: max(s.minimum, round(s.weight * n)) for s in catalogue if not s.bulk}
    rest = n - sum(counts.values())
    if rest < 0:
        raise ValueError(
            f"--domains {n} is too few to hold every scenario once: "
            f"use at least {sum(counts.values())}"
        )
    bulk = [s for s in catalogue if s.bulk]
    total_weight = sum(s.weight for s in bulk)
    shares = {s.name: int(rest * s.weight / total_weight) for s in bulk}
    shares[bulk[0].name] += rest - sum(shares.values())
    counts.update(shares)
    return counts


def make_plan(*, n: int, seed: int, net: int, now: dt.datetime, ipv6: bool = True) -> Plan:
    builder = Builder(seed=seed, net=net, now=now)
    catalogue = [s for s in CATALOGUE if ipv6 or not s.ipv6]
    counts = scenario_counts(n, catalogue)
    order = [s for s in catalogue for _ in range(counts[s.name])]
    builder.rng.shuffle(order)
    truth = tuple(scenario.build(builder) for scenario in order)
    if builder.postfix is None:
        raise RuntimeError("the catalogue must lay out the Postfix domain")
    postfix_host, postfix_chain = builder.postfix
    return Plan(
        seed=seed,
        net=net,
        zones=tuple(builder.frozen_zones()),
        listeners=tuple(builder.listeners()),
        chains=builder.chains,
        truth=truth,
        postfix=PostfixPlan(builder.postfix_address, postfix_host, postfix_chain),
        auth_address=builder.auth_address,
        resolver_address=builder.resolver_address,
        lame_address=builder.lame_address,
    )
