"""The testbed's profiles, and the internet profile's parameters as data.

The loopback profile answers within microseconds and never fails. The
internet profile gives the same scenarios the behaviour of the real internet:
the zones are spread over a few hundred DNS operators, each with its own
round-trip times, loss and faults, and the mail hosts pause, greylist, limit
and reset their clients. Every parameter below names the published figure it
comes from, or says that it is an assumption where we found none.

Sources (cited by number below):

[1] R. de O. Schmidt, J. Heidemann, J. H. Kuipers, "Anycast Latency: How Many
    Sites Are Enough?", PAM 2017: median RTT from 7,900 RIPE Atlas vantage
    points to the C-, F-, K- and L-Root anycast services between 25 and 32 ms.
[2] M. Müller, G. C. M. Moura, R. de O. Schmidt, J. Heidemann, "Recursives in
    the Wild: Engineering Authoritative DNS Servers", IMC 2017: a query from
    the US to a unicast authoritative server in the Netherlands takes at least
    70 ms; the study's unicast servers sat in Frankfurt and Sydney.
[3] S. Wang et al., "Measuring the Consolidation of DNS and Web Hosting
    Providers", arXiv 2110.15345 (2021): Cloudflare and Amazon host the
    authoritative DNS of over 30% of the Tranco top million.
[4] V. Pappas et al., "Impact of Configuration Errors on DNS Robustness",
    IEEE JSAC 27(3), 2009: lame delegation affects 15% of measured zones.
[5] V. Ramasubramanian, E. G. Sirer, "The Design and Implementation of a
    Next Generation Name Service for the Internet" (CoDoNS), SIGCOMM 2004:
    address resolution failed for about 1.1% of name servers (timeouts or
    records that do not exist).
[6] BIND 9 Administrator Reference Manual, "Response Rate Limiting": above
    the limit, every `slip`-th response is truncated (TC) and the rest are
    dropped; `slip 1` truncates every one.
[7] Postfix postconf(5): postscreen_greet_wait defaults to 6 s (2 s under
    stress); smtpd_client_connection_count_limit defaults to 50;
    smtpd_client_connection_rate_limit (per anvil_rate_time_unit, 60 s) is
    off by default and set by sites that throttle.
[8] Sendmail cf/README, FEATURE(`greet_pause'): the example pauses 5,000 ms
    before the greeting. RFC 5321 section 4.5.3.2.1 asks clients to wait up
    to 5 minutes for it.
[9] postgrey(8): --delay defaults to 300 s; OpenBSD spamd(8) (grey.h
    PASSTIME): greylisted hosts pass after 25 minutes; spamd's tarpit
    (-s secs) sends one character a second by default.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from testbed.model import NO_PUSHBACK, Pushback


class Profile(StrEnum):
    LOOPBACK = "loopback"  # every answer within microseconds, nothing fails
    INTERNET = "internet"  # latency, loss, faulty operators, mail hosts that push back


class OperatorKind(StrEnum):
    """How a DNS operator's servers behave, beyond their latency and loss."""

    HEALTHY = "healthy"
    DEAD = "dead"  # never answers (a timeout for the resolver)
    LAME = "lame"  # answers REFUSED: not authoritative for zones delegated to it [4]
    TRUNCATING = "truncating"  # every UDP answer TC: the resolver must use TCP
    RATE_LIMITED = "rate_limited"  # TC above a query rate, like RRL with slip 1 [6]

    @property
    def answers(self) -> bool:
        """Whether a resolver gets the zone's data from it at all."""
        return self not in (OperatorKind.DEAD, OperatorKind.LAME)


@dataclass(frozen=True, slots=True)
class Operator:
    """One DNS operator: an authoritative address, its latency and its faults.

    A query's delay is ``median_ms * exp(sigma * N(0, 1))``; with probability
    ``tail`` it is multiplied by a Pareto factor (shape ``TAIL_SHAPE``), and it
    never exceeds ``max_ms``. Each query is lost with probability ``loss``.
    """

    name: str
    address: str
    kind: OperatorKind
    share: float  # of the zones it serves (Zipf over the healthy operators)
    median_ms: float
    sigma: float
    tail: float
    loss: float
    max_ms: float
    rate_limit: int | None = None  # queries per second before TC (RATE_LIMITED)

    def scaled(self, factor: float) -> Operator:
        """The same operator with every delay multiplied by ``factor``."""
        return Operator(
            self.name,
            self.address,
            self.kind,
            self.share,
            self.median_ms * factor,
            self.sigma,
            self.tail,
            self.loss,
            self.max_ms * factor,
            self.rate_limit,
        )

    def lossier(self, extra: float) -> Operator:
        """The same operator on a path that loses a further ``extra`` of its
        queries (independently of the loss it has)."""
        loss = 1 - (1 - self.loss) * (1 - extra)
        return replace(self, loss=round(loss, 6))

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, item: dict[str, object]) -> Operator:
        limit = item.get("rate_limit")
        return cls(
            name=str(item["name"]),
            address=str(item["address"]),
            kind=OperatorKind(str(item["kind"])),
            share=float(str(item["share"])),
            median_ms=float(str(item["median_ms"])),
            sigma=float(str(item["sigma"])),
            tail=float(str(item["tail"])),
            loss=float(str(item["loss"])),
            max_ms=float(str(item["max_ms"])),
            rate_limit=None if limit is None else int(str(limit)),
        )


# -- DNS ----------------------------------------------------------------------

# "A few hundred DNS operators" hosting the zones.
OPERATORS = 300
# Zipf exponent of the operators' shares of zones: over 300 operators, 1.1
# gives the two largest about 30% of all zones, as [3] found for the top two.
ZIPF_EXPONENT = 1.1
# The root and the TLDs are anycast services like those measured in [1].
ROOT_MEDIAN_MS = 28.0
REGISTRY_MEDIAN_MS = 28.0
# The largest operators are anycast too [1][3]: medians drawn log-uniformly here.
LARGE_OPERATORS = 10
LARGE_MEDIAN_MS = (8.0, 40.0)
# The rest are mostly unicast, near the scanner or a continent away [2].
OTHER_MEDIAN_MS = (15.0, 300.0)
# Per-query jitter (lognormal sigma) and the heavy tail: assumptions, no
# published per-query distribution at hand; the sigma range keeps the middle
# half of one operator's answers within about 0.8-1.5x its median.
SIGMA = (0.2, 0.6)
TAIL = 0.01  # share of answers in the tail (assumption)
TAIL_SHAPE = 1.5  # Pareto shape of the tail factor (assumption)
MAX_DELAY_MS = 3000.0  # beyond this an answer is as good as lost
# Loss per query: the 0-5%; most operators lose little (assumption).
LOSS_COMMON = (0.0, 0.005)
LOSS_LOSSY = (0.01, 0.05)
LOSSY_SHARE = 0.1
# Faulty operators. Dead and lame ones serve only the zones of the scenarios
# that expect them (every zone on them fails, truth: dns_error); about 1% of
# domains fail that way ([5]; [4] counts zones with at least one lame server,
# most of which still resolve through another).
DEAD_OPERATORS = 3
LAME_OPERATORS = 3
# One operator truncates every UDP answer and one limits its rate; both
# serve ordinary zones (every answer still arrives, over TCP). Their ranks
# give them a real share of the zones.
TRUNCATING_RANK = 7
RATE_LIMITED_RANK = 4
RATE_LIMIT_QPS = 50  # from one client, per second (assumption; RRL per client is similar in scale)


def operator_addresses(net: int, count: int) -> list[str]:
    """Addresses 127.<net>.253.1-254 then 127.<net>.254.1-254: never mail hosts'."""
    pool = [f"127.{net}.{third}.{host}" for third in (253, 254) for host in range(1, 255)]
    if count > len(pool):
        raise ValueError(f"at most {len(pool)} DNS operators fit in 127.{net}.253-254.x")
    return pool[:count]


def draw_operators(rng: random.Random, net: int, count: int = OPERATORS) -> tuple[Operator, ...]:
    """The root, the TLD registry and ``count`` hosting operators, faulty ones included.

    Operator 0 serves the root, 1 the TLDs; the hosting operators follow in
    rank order (rank 1 the largest), the dead and lame ones last.
    """
    faulty = DEAD_OPERATORS + LAME_OPERATORS
    if count <= max(TRUNCATING_RANK, RATE_LIMITED_RANK, LARGE_OPERATORS) + faulty:
        raise ValueError(f"need more than {LARGE_OPERATORS + faulty} operators")
    addresses = operator_addresses(net, count + 2)
    ranks = count - faulty
    weights = [rank**-ZIPF_EXPONENT for rank in range(1, ranks + 1)]
    total = sum(weights)
    operators = [
        _fixed("root", addresses[0], ROOT_MEDIAN_MS),
        _fixed("registry", addresses[1], REGISTRY_MEDIAN_MS),
    ]
    for rank in range(1, count + 1):
        kind = OperatorKind.HEALTHY
        if rank == TRUNCATING_RANK:
            kind = OperatorKind.TRUNCATING
        elif rank == RATE_LIMITED_RANK:
            kind = OperatorKind.RATE_LIMITED
        elif rank > ranks:
            kind = OperatorKind.DEAD if rank - ranks <= DEAD_OPERATORS else OperatorKind.LAME
        low, high = LARGE_MEDIAN_MS if rank <= LARGE_OPERATORS else OTHER_MEDIAN_MS
        lossy = rng.random() < LOSSY_SHARE
        operators.append(
            Operator(
                name=f"op{rank:03d}",
                address=addresses[rank + 1],
                kind=kind,
                share=weights[rank - 1] / total if rank <= ranks else 0.0,
                median_ms=round(math.exp(rng.uniform(math.log(low), math.log(high))), 1),
                sigma=round(rng.uniform(*SIGMA), 2),
                tail=TAIL,
                loss=round(rng.uniform(*(LOSS_LOSSY if lossy else LOSS_COMMON)), 4),
                max_ms=MAX_DELAY_MS,
                rate_limit=RATE_LIMIT_QPS if kind is OperatorKind.RATE_LIMITED else None,
            )
        )
    return tuple(operators)


def _fixed(name: str, address: str, median_ms: float) -> Operator:
    return Operator(name, address, OperatorKind.HEALTHY, 0.0, median_ms, 0.3, TAIL, 0.0, 1000.0)


def pick_operator(rng: random.Random, operators: Sequence[Operator]) -> Operator:
    """A hosting operator for a zone, by share (only operators that answer have one)."""
    hosting = [op for op in operators if op.share > 0]
    return rng.choices(hosting, weights=[op.share for op in hosting])[0]


# -- SMTP ---------------------------------------------------------------------

# Greeting delays: most hosts greet within a second (assumption: reverse DNS
# and banner checks before the 220); some pause on purpose [7][8].
PROMPT_GREETING_S = (0.15, 0.8, 1.0)  # median, lognormal sigma, cap
PAUSED_SHARE = 0.07  # assumption
PAUSED_GREETING_S = (5.0, 20.0)
GREYLIST_SHARE = 0.05  # assumption: greylisting at connect time is a minority
GREYLIST_WINDOWS_S = ((300.0, 0.7), (60.0, 0.2), (1500.0, 0.1))  # [9]: postgrey, shorter, spamd
# Connection limits: Postfix's default concurrency [7] on some, tight
# throttling (a few at once, a rate per minute) on a few (assumption).
DEFAULT_LIMITS_SHARE = 0.2
TIGHT_LIMITS_SHARE = 0.05
TIGHT_CONCURRENT = 2
TIGHT_PER_MINUTE = 30
SLOW_TLS_SHARE = 0.03  # assumption
SLOW_TLS_S = (1.0, 4.0)
RESET_SHARE = 0.01  # assumption
# The session deadline the truth assumes (the scanner's default --timeout).
# Drawn delays of one host stay within this share of it, so a host that only
# pauses always passes.
SESSION_DEADLINE_S = 30.0
DELAY_BUDGET = 0.8


# One host of each kind at least, whatever the draws, so that a small testbed
# still has every kind (as every scenario has its minimum).
EVERY_PUSHBACK: dict[str, Pushback] = {
    "greeting_delay": Pushback(greeting_delay=PAUSED_GREETING_S[0]),
    "greylist_window": Pushback(greylist_window=GREYLIST_WINDOWS_S[1][0]),
    "max_per_minute": Pushback(max_concurrent=TIGHT_CONCURRENT, max_per_minute=TIGHT_PER_MINUTE),
    "tls_delay": Pushback(tls_delay=SLOW_TLS_S[0]),
    "reset_first_handshake": Pushback(reset_first_handshake=True),
}


def draw_pushback(rng: random.Random) -> Pushback:
    """How one mail host pushes back, drawn with the weights above."""
    if rng.random() < PAUSED_SHARE:
        greeting = rng.uniform(*PAUSED_GREETING_S)
    else:
        median, sigma, cap = PROMPT_GREETING_S
        greeting = min(cap, median * math.exp(sigma * rng.gauss(0.0, 1.0)))
    window = None
    if rng.random() < GREYLIST_SHARE:
        windows, weights = zip(*GREYLIST_WINDOWS_S, strict=True)
        window = rng.choices(windows, weights=weights)[0]
    concurrent = per_minute = None
    draw = rng.random()
    if draw < TIGHT_LIMITS_SHARE:
        concurrent, per_minute = TIGHT_CONCURRENT, TIGHT_PER_MINUTE
    elif draw < TIGHT_LIMITS_SHARE + DEFAULT_LIMITS_SHARE:
        concurrent = 50
    tls_delay = rng.uniform(*SLOW_TLS_S) if rng.random() < SLOW_TLS_SHARE else 0.0
    budget = DELAY_BUDGET * SESSION_DEADLINE_S
    if greeting + tls_delay > budget:
        tls_delay = max(0.0, budget - greeting)
    return Pushback(
        greeting_delay=round(greeting, 3),
        greylist_window=window,
        max_concurrent=concurrent,
        max_per_minute=per_minute,
        tls_delay=round(tls_delay, 3),
        reset_first_handshake=rng.random() < RESET_SHARE,
    )


def scale_pushback(pushback: Pushback, factor: float) -> Pushback:
    """Every delay of ``pushback`` multiplied by ``factor`` (the limits stay)."""
    if pushback.is_default:
        return NO_PUSHBACK
    window = pushback.greylist_window
    return Pushback(
        greeting_delay=pushback.greeting_delay * factor,
        greylist_window=None if window is None else window * factor,
        max_concurrent=pushback.max_concurrent,
        max_per_minute=pushback.max_per_minute,
        tls_delay=pushback.tls_delay * factor,
        reset_first_handshake=pushback.reset_first_handshake,
    )


# -- the truth's assumptions ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What the truth assumes of the scanner where a verdict depends on retries.

    A scanner that follows it reaches the truth on the internet profile: a
    greylisted host passes on a later attempt, a 421 or a reset is retried,
    a host that only pauses passes within the deadline, and a domain whose
    only operator is dead or lame stays ``dns_error`` however often it asks.
    """

    session_deadline_s: float  # per SMTP session, greeting to EHLO over TLS
    smtp_attempts: int  # per address and SNI name, after a 4xx, a 421 or a TLS reset
    retry_after_greylist: bool  # the next attempt waits out the greylisting window
    dns_attempts: int  # per query, after a timeout or SERVFAIL without validation EDE

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def retry_policy(latency_scale: float) -> RetryPolicy:
    """The policy the truth of a testbed with this latency scale assumes: a
    slower testbed needs a proportionally longer deadline."""
    return RetryPolicy(
        session_deadline_s=SESSION_DEADLINE_S * max(1.0, latency_scale),
        smtp_attempts=3,
        retry_after_greylist=True,
        dns_attempts=3,
    )
