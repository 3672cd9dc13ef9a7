"""The variants of a synthetic scan: one per scenario of the testbed's
catalogue (testbed.scenarios), with what a scan of such a domain observes.

Name, weight, minimum and the verdicts come from the scenario: the catalogue
is the one statement of which kinds of domain exist, how common each is and
what RFC 7672 makes of it. What is written here is the observation a scanner
records for such a domain (MX hosts, TLSA records, addresses, sessions and
chains, as scanner.output.schema lays them out) and the funnel stages of
analysis.metrics it reaches, stated by hand, so that SynthSummary stays an
oracle independent of the rows. The only variant beyond the catalogue is a
line of the input that is not a domain name, which a testbed's domain list
never holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus as S
from scanner.status import DomainVerdict as D
from scanner.status import SmtpStatus
from testbed.scenarios import CATALOGUE, Scenario
from testbed.synth.rows import (
    DOMAIN,
    PROVIDER,
    TLS12,
    TLS12_ECDSA,
    TLS13,
    TLS13_CHACHA,
    Certs,
    address,
    host,
    row,
)

OK = SmtpStatus.TLS_OK


@dataclass(frozen=True, slots=True)
class Variant:
    """One kind of domain, and the answers the metrics must give about it.

    ``row`` is a schema row whose names may hold the placeholders. The flags
    are the funnel stages of analysis.metrics, stated by hand.
    """

    name: str
    weight: float  # share of all domains
    row: Mapping[str, Any] = field(repr=False)
    with_mx: bool
    secure_mx: bool
    secure_tlsa: bool
    pool: str | None = None  # provider pool the {provider} placeholder draws from
    pool_size: int = 0
    signed_tlds: bool = False
    bulk: bool = False  # takes its share of what the other variants leave
    minimum: int = 1  # at least this many, whatever N

    @property
    def verdict(self) -> str:
        return str(self.row["verdict"])

    @property
    def host_verdicts(self) -> tuple[str, ...]:
        return tuple(str(h["verdict"]) for h in self.row["mx_hosts"])

    @property
    def dane_valid(self) -> bool:
        return self.verdict == D.DANE_VALID


@dataclass(frozen=True, slots=True)
class Observed:
    """What a scan of a scenario's domain records, and the funnel stages it
    reaches: M (has mail hosts), S (secure MX), T (a host with secure TLSA)."""

    row: Mapping[str, Any]
    flags: str
    signed_tlds: bool = True
    # The provider pool the {provider} placeholder draws from, and its size.
    pool: tuple[str, int] | None = None


# How a scenario's domain is observed: from the scenario (its verdicts) and the certificates.
Observe = Callable[[Scenario, Certs], Observed]


def _insecure_hosts(names: Sequence[str], s: Scenario, c: Certs, leaf: str) -> list[dict[str, Any]]:
    issuer = "R10" if leaf == "hoster" else {"provider-ee": "E6"}.get(leaf, "R11")
    return [
        host(
            n,
            s.host_verdict(i),
            address_dnssec=S.INSECURE,
            tlsa_state="not_looked_up",
            addresses=[
                address(f"198.51.100.{i + 1}", OK, s.host_verdict(i), c.chain(leaf, issuer), TLS12)
            ],
            preference=10 * (i + 1),
        )
        for i, n in enumerate(names)
    ]


def _unsigned(
    names: Sequence[str], leaf: str, mx_kind: str = "hosts", pool: tuple[str, int] | None = None
) -> Observe:
    def observe(s: Scenario, c: Certs) -> Observed:
        hosts = _insecure_hosts(names, s, c, leaf)
        return Observed(row(s.verdict, mx_kind, S.INSECURE, hosts), "M", False, pool)

    return observe


def _no_hosts(mx_kind: str, mx_dnssec: S, *, signed: bool = True) -> Observe:
    def observe(s: Scenario, c: Certs) -> Observed:
        return Observed(row(s.verdict, mx_kind, mx_dnssec), "", signed)

    return observe


def _signed_self(s: Scenario, c: Certs, tlsa_state: str) -> Observed:
    plain = address("198.51.100.77", OK, s.host_verdict(0), c.chain("hoster", "R10"), TLS12_ECDSA)
    mx = host(f"mx.{DOMAIN}", s.host_verdict(0), tlsa_state=tlsa_state, addresses=[plain])
    return Observed(row(s.verdict, "hosts", S.SECURE, [mx]), "MS")


def _provider(
    records: Sequence[tuple[int, int, int, str]],
    chain: Sequence[str],
    tls: tuple[str, str],
    pool: tuple[str, int],
    *,
    hosts: int = 2,
    v6: bool = True,
) -> Observe:
    """DANE at a provider: every host publishes ``records`` (the first matches)."""

    def observe(s: Scenario, c: Certs) -> Observed:
        tlsa = [c.tlsa(*r) for r in records]
        mx = []
        for i in range(1, hosts + 1):
            verdict = s.host_verdict(i - 1)
            addresses = [address(f"192.0.2.{i}", OK, verdict, c.chain(*chain), tls)]
            if v6:
                addresses.append(address(f"2001:db8::{i}", OK, verdict, c.chain(*chain), tls))
            mx.append(
                host(
                    f"mx{i}.{PROVIDER}",
                    verdict,
                    tlsa=tlsa,
                    matched=tlsa[0],
                    match_depth=0,
                    addresses=addresses,
                    preference=10 * i,
                )
            )
        return Observed(row(s.verdict, "hosts", S.SECURE, mx), "MST", True, pool)

    return observe


# A record as (usage, selector, mtype, certificate label), or made from the certificates.
Rec = tuple[int, int, int, str]
Made = Callable[[Certs], dict[str, Any]]
SELF = ("self", "R11")


def _wrong(record: Rec) -> Made:
    """``record`` with the last byte of its data changed: matches nothing."""

    def make(c: Certs) -> dict[str, Any]:
        good = c.tlsa(*record)
        return {**good, "data": good["data"][:-1] + bytes([good["data"][-1] ^ 1])}

    return make


def _unknown_usage(c: Certs) -> dict[str, Any]:
    return {**c.tlsa(3, 1, 1, "self"), "usage": 4}


def _short_digest(c: Certs) -> dict[str, Any]:
    """A SHA-256 field of 20 bytes."""
    good = c.tlsa(3, 1, 1, "self")
    return {**good, "data": good["data"][:20]}


def _decoy(index: int) -> Made:
    """A record of the real one's usage, selector and type that matches nothing."""
    return lambda c: {"usage": 3, "selector": 1, "mtype": 2, "data": bytes([index]) * 64}


def _self_dane(
    records: Sequence[Rec | Made],
    chain: Sequence[str] = SELF,
    *,
    matched: int | None = None,
    depth: int = -1,
    tls: tuple[str, str] = TLS13,
    status: SmtpStatus = OK,
    tlsa_state: str = "records",
    flags: str = "MST",
) -> Observe:
    """A self-hosted DANE domain: one MX host publishing ``records`` (the one at
    index ``matched`` matches at ``depth``) and serving ``chain``."""

    def observe(s: Scenario, c: Certs) -> Observed:
        tlsa = [c.tlsa(*r) if isinstance(r, tuple) else r(c) for r in records]
        verdict = s.host_verdict(0)
        served = c.chain(*chain) if status == OK else []
        mx = host(
            f"mx.{DOMAIN}",
            verdict,
            tlsa_state=tlsa_state,
            tlsa=tlsa,
            matched=tlsa[matched] if matched is not None else None,
            match_depth=depth,
            addresses=[address("203.0.113.7", status, verdict, served, tls)],
        )
        return Observed(row(s.verdict, "hosts", S.SECURE, [mx]), flags)

    return observe


def _cname(at_expanded: bool) -> Observe:
    def observe(s: Scenario, c: Certs) -> Observed:
        record = c.tlsa(3, 1, 1, "self")
        target = f"srv.{DOMAIN}"
        mx = host(
            f"mx.{DOMAIN}",
            s.host_verdict(0),
            cname_target=target,
            tlsa_base=target if at_expanded else None,
            tlsa=[record],
            matched=record,
            match_depth=0,
            addresses=[address("203.0.113.13", OK, V.PASS, c.chain(*SELF), TLS13)],
        )
        return Observed(row(s.verdict, "hosts", S.SECURE, [mx]), "MST")

    return observe


def _implicit_mx_tlsa(s: Scenario, c: Certs) -> Observed:
    record = c.tlsa(3, 1, 1, "self")
    mx = host(
        DOMAIN,
        s.host_verdict(0),
        tlsa=[record],
        matched=record,
        match_depth=0,
        addresses=[address("203.0.113.8", OK, V.PASS, c.chain(*SELF), TLS13)],
    )
    return Observed(row(s.verdict, "implicit", S.SECURE, [mx]), "MST")


def _two_hosts_one_fails(s: Scenario, c: Certs) -> Observed:
    good, stale = c.tlsa(3, 1, 1, "self"), c.tlsa(3, 1, 1, "self-old")
    mx = [
        host(
            f"mx{i}.{DOMAIN}",
            s.host_verdict(i - 1),
            tlsa=[record],
            matched=record if record is good else None,
            match_depth=0 if record is good else -1,
            addresses=[
                address(f"203.0.113.{8 + i}", OK, s.host_verdict(i - 1), c.chain(*SELF), TLS13)
            ],
            preference=10 * i,
        )
        for i, record in ((1, good), (2, stale))
    ]
    return Observed(row(s.verdict, "hosts", S.SECURE, mx), "MST")


def _two_addresses_one_wrong(s: Scenario, c: Certs) -> Observed:
    record = c.tlsa(3, 1, 1, "self")
    addresses = [
        address("203.0.113.14", OK, V.PASS, c.chain(*SELF), TLS13),
        address("203.0.113.15", OK, V.FAIL_NO_MATCH, c.chain("self-old", "R11"), TLS13),
    ]
    mx = host(f"mx.{DOMAIN}", s.host_verdict(0), tlsa=[record], addresses=addresses)
    return Observed(row(s.verdict, "hosts", S.SECURE, [mx]), "MST")


def _dual_stack(s: Scenario, c: Certs) -> Observed:
    record = c.tlsa(3, 1, 1, "self")
    addresses = [
        address(ip, OK, V.PASS, c.chain(*SELF), TLS13) for ip in ("203.0.113.12", "2001:db8::12")
    ]
    mx = host(
        f"mx.{DOMAIN}",
        s.host_verdict(0),
        tlsa=[record],
        matched=record,
        match_depth=0,
        addresses=addresses,
    )
    return Observed(row(s.verdict, "hosts", S.SECURE, [mx]), "MST")


def _insecure_delegation_tlsa(s: Scenario, c: Certs) -> Observed:
    """Lee et al.'s "no DS": TLSA published in a zone whose delegation is unsigned."""
    mx = host(
        f"mx.{DOMAIN}",
        s.host_verdict(0),
        address_dnssec=S.INSECURE,
        tlsa_state="insecure",
        tlsa=[c.tlsa(3, 1, 1, "self")],
        addresses=[address("198.51.100.9", OK, s.host_verdict(0), c.chain(*SELF), TLS12)],
    )
    return Observed(row(s.verdict, "hosts", S.INSECURE, [mx]), "M", signed_tlds=False)


_BULK_POOL = ("bulk", 2000)
_PROVIDER_HOSTS = (f"mx1.{PROVIDER}", f"mx2.{PROVIDER}")
_TA = (2, 1, 1, "R11")
_EE = (3, 1, 1, "self")
_OLD = (3, 1, 1, "self-old")

# How each scenario of the catalogue is observed.
OBSERVE: dict[str, Observe] = {
    # the unsigned bulk
    "unsigned_provider": _unsigned(_PROVIDER_HOSTS, "bulk", pool=_BULK_POOL),
    "unsigned_selfhosted": _unsigned([f"mx.{DOMAIN}"], "hoster"),
    "unsigned_dane_provider": _unsigned(
        _PROVIDER_HOSTS, "provider-ee", pool=("dane-ee", 150)
    ),
    "unsigned_no_mx": _unsigned([DOMAIN], "hoster", "implicit"),
    "nxdomain": _no_hosts("nxdomain", S.INSECURE, signed=False),
    "insecure_delegation_tlsa": _insecure_delegation_tlsa,
    # signed without DANE
    "signed_no_tlsa": lambda s, c: _signed_self(s, c, "nxdomain"),
    "signed_tlsa_nodata": lambda s, c: _signed_self(s, c, "nodata"),
    "signed_insecure_host": lambda s, c: Observed(
        row(s.verdict, "hosts", S.SECURE, _insecure_hosts(_PROVIDER_HOSTS, s, c, "bulk")),
        "MS",
        pool=_BULK_POOL,
    ),
    "null_mx": _no_hosts("null", S.SECURE),
    "bogus_mx": _no_hosts("failed", S.BOGUS),
    "bogus_wrong_ds": _no_hosts("failed", S.BOGUS),
    "bogus_expired": _no_hosts("failed", S.BOGUS),
    # DANE at providers
    "dane_provider_a": _provider([(3, 1, 1, "provider-ee")], ("provider-ee", "E6"), TLS13,
                                 ("dane-ee", 150)),
    "dane_provider_b": _provider([(3, 1, 1, "provider-eeta"), _TA], ("provider-eeta", "R11"),
                                 TLS13_CHACHA, ("dane-eeta", 30), hosts=1),
    "dane_provider_c": _provider([(3, 1, 1, "provider-roll"), (3, 1, 1, "provider-roll-next")],
                                 ("provider-roll", "R11"), TLS12, ("dane-roll", 20), v6=False),
    # self-hosted DANE
    "ee_311": _self_dane([_EE], matched=0, depth=0),
    "ee_301": _self_dane([(3, 0, 1, "self")], matched=0, depth=0, tls=TLS12),
    "ee_312": _self_dane([(3, 1, 2, "self")], matched=0, depth=0),
    "ee_300": _self_dane([(3, 0, 0, "self")], matched=0, depth=0),
    "ee_310": _self_dane([(3, 1, 0, "self")], matched=0, depth=0, tls=TLS12),
    "ta_211_intermediate": _self_dane([_TA], matched=0, depth=1),
    "ta_201_root_sent": _self_dane(
        [(2, 0, 1, "ISRG Root X1 (synthetic)")], (*SELF, "ISRG Root X1 (synthetic)"),
        matched=0, depth=2,
    ),
    "ta_200_not_sent": _self_dane(
        [(2, 0, 0, "Mail Provider CA (synthetic)")], ("self-private",), matched=0, depth=1
    ),
    "ta_name_mismatch": _self_dane([_TA], matched=0, depth=1),
    "ta_expired_leaf": _self_dane([_TA], matched=0, depth=1),
    "ta_expired_intermediate": _self_dane([_TA], matched=0, depth=1, tls=TLS12),
    "ee_expired_wrong_name": _self_dane([_EE], matched=0, depth=0),
    "stale_after_rollover": _self_dane([_OLD]),
    "rollover_both": _self_dane([_OLD, _EE], matched=1, depth=0),
    "ee_and_ta": _self_dane([_EE, _TA], matched=0, depth=0),
    "agility_strong_right": _self_dane([_wrong(_EE), (3, 1, 2, "self")], matched=1, depth=0),
    "agility_strong_wrong": _self_dane([_EE, _wrong((3, 1, 2, "self"))]),
    "pkix_only": _self_dane([(1, 1, 1, "self"), (0, 1, 1, "R11")]),
    "malformed_records": _self_dane([_unknown_usage, _short_digest]),
    "big_tlsa_rrset": _self_dane([*map(_decoy, range(1, 23)), (3, 1, 2, "self")], matched=22,
                                 depth=0),
    "bogus_tlsa": _self_dane([], tlsa_state="bogus", flags="MS"),
    "lame_tlsa": _self_dane([], tlsa_state="servfail", flags="MS"),
    "implicit_mx_tlsa": _implicit_mx_tlsa,
    "cname_tlsa_expanded": _cname(at_expanded=True),
    "cname_tlsa_original": _cname(at_expanded=False),
    "two_hosts_one_fails": _two_hosts_one_fails,
    "two_addresses_one_wrong": _two_addresses_one_wrong,
    "no_starttls": _self_dane([_EE], status=SmtpStatus.NO_STARTTLS),
    "starttls_454": _self_dane([_EE], status=SmtpStatus.STARTTLS_REFUSED),
    "connect_refused": _self_dane([_EE], status=SmtpStatus.CONNECT_REFUSED),
    "silent_host": _self_dane([_EE], status=SmtpStatus.IO_TIMEOUT),
    "dual_stack": _dual_stack,
    # faults of the real internet
    "dead_operator": _no_hosts("failed", S.INDETERMINATE, signed=False),
    "lame_operator": _no_hosts("failed", S.INDETERMINATE),
    "tarpit_host": _self_dane([_EE], status=SmtpStatus.IO_TIMEOUT),
    "tls_reset_host": _self_dane([_EE], status=SmtpStatus.TLS_ERROR),
    # Beside DANE: the DANE columns look like their DANE twins' today.
    "ta_expires_soon": _self_dane([_TA], matched=0, depth=1),
    "requiretls_offered": _self_dane([_EE], matched=0, depth=0),
    "starttls_on_one_address": _self_dane([_EE], status=SmtpStatus.NO_STARTTLS),
    # MTA-STS and TLS-RPT: their DANE columns are an unsigned self-hosted domain's.
    **dict.fromkeys(
        ("sts_enforce", "sts_testing", "sts_mode_none", "sts_wildcard", "sts_mx_outside",
         "sts_testing_outside", "sts_mx_untrusted", "sts_not_found", "sts_redirect",
         "sts_wrong_type", "sts_too_large", "sts_wrong_name", "sts_no_https",
         "sts_no_policy_host", "sts_policy_syntax", "sts_record_invalid", "sts_record_twice",
         "tlsrpt_malformed",),
        _unsigned([f"mx.{DOMAIN}"], "hoster"),
    ),
    "dane_and_sts": _self_dane([_EE], matched=0, depth=0),
}  # fmt: skip

# A line of the input that is not a domain name: no scenario lays one out.
INPUT_ERROR = Variant(
    "input_error",
    0.0005,
    row(D.INPUT_ERROR, "failed", S.INDETERMINATE),
    with_mx=False,
    secure_mx=False,
    secure_tlsa=False,
)


def synthetic(scenario: Scenario) -> bool:
    """Whether a synthetic scan holds the scenario: every kind of domain with a
    share of the internet (the real Postfix's one domain is the testbed's own)."""
    return scenario.weight > 0


def all_variants(certs: Certs, catalogue: Sequence[Scenario] = CATALOGUE) -> tuple[Variant, ...]:
    """A variant per scenario of ``catalogue`` that a synthetic scan holds,
    in catalogue order, and the input error last."""
    out = []
    for s in filter(synthetic, catalogue):
        seen = OBSERVE[s.name](s, certs)
        out.append(
            Variant(
                s.name,
                s.weight,
                seen.row,
                with_mx="M" in seen.flags,
                secure_mx="S" in seen.flags,
                secure_tlsa="T" in seen.flags,
                pool=seen.pool[0] if seen.pool else None,
                pool_size=seen.pool[1] if seen.pool else 0,
                signed_tlds=seen.signed_tlds,
                bulk=s.bulk,
                minimum=s.minimum,
            )
        )
    return (*out, INPUT_ERROR)
