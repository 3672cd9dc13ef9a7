"""From (seed, N, profile) to the whole simulated internet as data: zones,
listeners, DNS operators, certificate chains and the expected verdict of
every domain.

Deterministic for a given seed, N and profile: the same domains, the same
scenarios in the same order, the same zones, operators and addresses
(certificate bytes aside, since RSA keys and ECDSA signatures are randomised;
see testbed.pki). The internet profile draws its operators and pushback from
a generator of its own, so the loopback profile's plan is what it always was.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

from testbed.builder import Builder, DomainTruth, ZoneDraft
from testbed.model import NO_PUSHBACK, Behavior, HttpsSite, Listener, Pushback, Zone
from testbed.pki import Issued
from testbed.profile import (
    DELAY_BUDGET,
    EVERY_PUSHBACK,
    PAUSED_GREETING_S,
    SESSION_DEADLINE_S,
    Operator,
    OperatorKind,
    Profile,
    RetryPolicy,
    draw_operators,
    draw_pushback,
    pick_operator,
    retry_policy,
    scale_pushback,
)
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
    profile: Profile
    latency_scale: float
    zones: tuple[Zone, ...]
    listeners: tuple[Listener, ...]
    chains: dict[str, list[Issued]]
    truth: tuple[DomainTruth, ...]
    postfix: PostfixPlan | None
    auth_address: str
    resolver_address: str
    lame_address: str
    # The internet profile's DNS operators (empty on loopback), delays scaled.
    operators: tuple[Operator, ...]
    # What the truth assumes of a scanner's retries.
    policy: RetryPolicy
    # NSD instances of their own for the root and the TLDs (internet profile).
    layer_addresses: tuple[str, str] | None
    # The mta-sts.<domain> sites nginx serves (testbed.nginx), and the roots
    # their certificates and the MX hosts' chain to: a scan's --pkix-ca.
    sites: tuple[HttpsSite, ...] = ()
    webpki_roots: tuple[Issued, ...] = ()

    @property
    def domains(self) -> list[str]:
        return [t.domain.rstrip(".") for t in self.truth]

    @property
    def scan_args(self) -> list[str]:
        """The options a scan of this testbed needs besides resolver and names:
        its addresses are special-purpose (RFC 6890: loopback), which a scan
        contacts only in ranges it is told to allow (scanner.handshake.contact).
        The net's 127.<net>.0.0/16, and each IPv6 address its zones publish
        (::1) as itself, never the whole host's loopback."""
        ranges = [f"127.{self.net}.0.0/16"]
        for zone in self.zones:
            for record in zone.records:
                if record.rtype == "AAAA":
                    cidr = f"{ipaddress.IPv6Address(record.rdata)}/128"
                    if cidr not in ranges:
                        ranges.append(cidr)
        return [arg for cidr in ranges for arg in ("--allow-range", cidr)]

    @property
    def root_address(self) -> str:
        """Where the root hints point: the root's operator, or NSD itself."""
        root = next(zone for zone in self.zones if zone.origin == ".")
        return root.server or self.auth_address


def catalogue_for(profile: Profile, *, ipv6: bool = True, postfix: bool = True) -> list[Scenario]:
    """The scenarios a testbed holds: what it leaves out, its truth leaves out."""
    return [
        s
        for s in CATALOGUE
        if (ipv6 or not s.ipv6)
        and (postfix or s.name != "postfix_dane")
        and (profile is Profile.INTERNET or not s.internet)
    ]


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


def make_plan(
    *,
    n: int,
    seed: int,
    net: int,
    now: dt.datetime,
    ipv6: bool = True,
    postfix: bool = True,
    profile: Profile = Profile.LOOPBACK,
    latency_scale: float = 1.0,
    dns_loss: float = 0.0,
    scenarios: Sequence[Scenario] | None = None,
) -> Plan:
    """The plan of ``n`` domains drawn from the catalogue of ``profile``, or
    from ``scenarios`` instead (a test's own layouts, registered nowhere)."""
    if latency_scale < 0 or latency_scale != latency_scale:
        raise ValueError("the latency scale must be a number >= 0")
    if not 0 <= dns_loss < 1:
        raise ValueError("the DNS loss must be in [0, 1)")
    internet = profile is Profile.INTERNET
    builder = Builder(seed=seed, net=net, now=now, zone_per_domain=internet)
    catalogue = (
        list(scenarios)
        if scenarios is not None
        else catalogue_for(profile, ipv6=ipv6, postfix=postfix)
    )
    counts = scenario_counts(n, catalogue)
    order = [s for s in catalogue for _ in range(counts[s.name])]
    builder.rng.shuffle(order)
    truth = tuple(scenario.build(builder) for scenario in order)
    postfix_plan = None
    if builder.postfix is not None:
        host, chain_id = builder.postfix
        postfix_plan = PostfixPlan(builder.postfix_address, host, chain_id)
    zones = [draft.freeze() for draft in builder.zones.values()]
    listeners = builder.listeners()
    operators: tuple[Operator, ...] = ()
    if internet:
        draws = random.Random(f"internet-{seed}")
        operators = tuple(
            op.scaled(latency_scale).lossier(dns_loss) for op in draw_operators(draws, net)
        )
        zones = _place_zones(draws, builder.zones.values(), operators)
        listeners = _with_pushback(draws, listeners, latency_scale)
    return Plan(
        seed=seed,
        net=net,
        profile=profile,
        latency_scale=latency_scale,
        zones=tuple(zones),
        listeners=tuple(listeners),
        chains=builder.chains,
        truth=truth,
        postfix=postfix_plan,
        auth_address=builder.auth_address,
        resolver_address=builder.resolver_address,
        lame_address=builder.lame_address,
        operators=operators,
        policy=retry_policy(latency_scale),
        layer_addresses=builder.layer_addresses if internet else None,
        sites=tuple(builder.sites()),
        webpki_roots=tuple(builder.webpki_roots()),
    )


def _place_zones(
    rng: random.Random, drafts: Iterable[ZoneDraft], operators: Sequence[Operator]
) -> list[Zone]:
    """Every zone on a DNS operator: the root and the TLDs on theirs, a zone
    that asks for a faulty kind on one of that kind, the rest by share."""
    root, registry = operators[0], operators[1]
    by_kind: dict[OperatorKind, list[Operator]] = {}
    for op in operators[2:]:
        by_kind.setdefault(op.kind, []).append(op)
    placed = []
    for draft in drafts:
        if draft.lame:
            placed.append(draft.freeze())
            continue
        if draft.origin == ".":
            server = root
        elif draft.origin.count(".") == 1:
            server = registry
        elif draft.operator is not None:
            server = rng.choice(by_kind[draft.operator])
        else:
            server = pick_operator(rng, operators)
        placed.append(draft.freeze(server.address))
    return placed


def _with_pushback(
    rng: random.Random, listeners: Sequence[Listener], scale: float
) -> list[Listener]:
    """The mail hosts of the internet profile push back as drawn
    (testbed.profile), every kind of pushback on at least one host so that a
    small testbed still has each; hosts whose behaviour is already a failure
    keep it unmixed."""
    speaking = [i for i, x in enumerate(listeners) if x.behavior is Behavior.STARTTLS]
    drawn = {i: draw_pushback(rng) for i in speaking}
    for kind, example in EVERY_PUSHBACK.items():
        if speaking and not any(_has(drawn[i], kind) for i in speaking):
            chosen = rng.choice(speaking)
            drawn[chosen] = _merge(drawn[chosen], example)
    return [
        replace(x, pushback=scale_pushback(drawn[i], scale)) if i in drawn else x
        for i, x in enumerate(listeners)
    ]


def _has(pushback: Pushback, kind: str) -> bool:
    if kind == "greeting_delay":
        return pushback.greeting_delay >= PAUSED_GREETING_S[0]
    return getattr(pushback, kind) not in (None, 0.0, False)


def _merge(pushback: Pushback, example: Pushback) -> Pushback:
    """``pushback`` with the one kind ``example`` sets, within the delay budget."""
    changes = {
        f.name: getattr(example, f.name)
        for f in fields(Pushback)
        if getattr(example, f.name) != getattr(NO_PUSHBACK, f.name)
    }
    merged = replace(pushback, **changes)
    budget = DELAY_BUDGET * SESSION_DEADLINE_S
    if merged.greeting_delay + merged.tls_delay > budget:
        merged = replace(merged, tls_delay=max(0.0, budget - merged.greeting_delay))
    return merged
