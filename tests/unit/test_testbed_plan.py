"""The testbed planner: deterministic, complete and consistent with its own truth."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scanner.handshake.contact import ContactPolicy
from scanner.status import DaneVerdict, DomainVerdict
from testbed.model import DsMode
from testbed.plan import Plan, catalogue_for, make_plan, scenario_counts
from testbed.profile import Profile, retry_policy
from testbed.scenarios import CATALOGUE
from testbed.truth import read_policy, write_truth

LOOPBACK = catalogue_for(Profile.LOOPBACK)

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return make_plan(n=600, seed=7, net=42, now=NOW)


def test_counts_fill_n_and_honour_minimums() -> None:
    for n in (len(CATALOGUE) + 5, 600, 100_000, 1_000_000):
        counts = scenario_counts(n)
        assert sum(counts.values()) == n
        assert all(counts[s.name] >= s.minimum for s in CATALOGUE)


def test_too_few_domains_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least"):
        scenario_counts(10)


def test_proportions_resemble_the_internet(plan: Plan) -> None:
    verdict_of = {t.scenario: t.verdict for t in plan.truth}
    dane_verdicts = {
        DomainVerdict.DANE_VALID,
        DomainVerdict.DANE_PARTIAL,
        DomainVerdict.DANE_INVALID,
    }
    counts = scenario_counts(1_000_000, LOOPBACK)
    unsigned = counts["unsigned_provider"] + counts["unsigned_selfhosted"]
    dane = sum(c for name, c in counts.items() if verdict_of[name] in dane_verdicts)
    assert unsigned / 1_000_000 > 0.9
    assert 0.005 < dane / 1_000_000 < 0.02
    providers = counts["dane_provider_a"] + counts["dane_provider_b"] + counts["dane_provider_c"]
    assert providers / dane > 0.5


def test_same_seed_same_testbed() -> None:
    a = make_plan(n=300, seed=3, net=42, now=NOW)
    b = make_plan(n=300, seed=3, net=42, now=NOW)
    c = make_plan(n=300, seed=4, net=42, now=NOW)
    assert a.truth == b.truth
    assert [z.origin for z in a.zones] == [z.origin for z in b.zones]
    assert [(r.owner, r.rtype) for z in a.zones for r in z.records] == [
        (r.owner, r.rtype) for z in b.zones for r in z.records
    ]
    assert a.domains != c.domains


def test_every_scenario_present_and_domains_unique(plan: Plan) -> None:
    seen = Counter(t.scenario for t in plan.truth)
    assert set(seen) == {s.name for s in LOOPBACK}
    assert len(set(plan.domains)) == len(plan.domains) == 600


def test_addresses_are_loopback_in_the_chosen_net(plan: Plan) -> None:
    for listener in plan.listeners:
        ip = ipaddress.ip_address(listener.address)
        assert ip.is_loopback
        if ip.version == 4:
            assert listener.address.startswith("127.42.")
    for zone in plan.zones:
        for record in zone.records:
            if record.rtype in ("A", "AAAA"):
                assert ipaddress.ip_address(record.rdata).is_loopback


def test_chains_of_listeners_exist(plan: Plan) -> None:
    for listener in plan.listeners:
        for chain_id in [*listener.chains.values(), listener.default_chain]:
            assert chain_id is None or chain_id in plan.chains


def test_zone_tree_has_root_signed_tlds_and_unsigned_bulk(plan: Plan) -> None:
    zones = {z.origin: z for z in plan.zones}
    assert zones["."].signed
    assert zones["example."].signed
    assert zones["test."].signed
    assert not zones["alt."].signed
    assert zones["alt."].parent_ds is DsMode.NONE
    assert any(z.parent_ds is DsMode.WRONG for z in plan.zones)
    assert any(z.expired for z in plan.zones)
    assert any(z.lame for z in plan.zones)
    assert any(z.corrupt_rrsets for z in plan.zones)


def test_big_tlsa_rrset_exceeds_the_udp_payload(plan: Plan) -> None:
    truth = next(t for t in plan.truth if t.scenario == "big_tlsa_rrset")
    owner = f"_25._tcp.{truth.mx_hosts[0].host}"
    rdata = [r.rdata for z in plan.zones for r in z.records if r.owner == owner]
    # wire size: owner name (compressed after the first) + 10 bytes of header + rdata
    wire = sum(12 + 3 + len(r.split()[3]) // 2 for r in rdata)
    assert wire > 1232


def test_domain_verdicts_follow_host_verdicts(plan: Plan) -> None:
    for t in plan.truth:
        verdicts = {h.verdict for h in t.mx_hosts}
        if t.verdict is DomainVerdict.DANE_VALID:
            assert verdicts == {DaneVerdict.PASS}
        elif t.verdict is DomainVerdict.DANE_PARTIAL:
            assert DaneVerdict.PASS in verdicts
            assert len(verdicts) > 1
        elif t.verdict is DomainVerdict.DANE_INVALID:
            assert DaneVerdict.PASS not in verdicts
            assert any(v.is_failure or v is DaneVerdict.UNUSABLE for v in verdicts)
        elif t.verdict is DomainVerdict.NO_DANE:
            assert verdicts <= {DaneVerdict.NO_DANE_INSECURE, DaneVerdict.NO_DANE_ABSENT}
        elif t.verdict in (DomainVerdict.NXDOMAIN, DomainVerdict.NULL_MX):
            assert not t.mx_hosts


def test_the_loopback_plan_is_what_it_was() -> None:
    """The internet profile left the loopback profile's plan untouched: these
    digests were taken from the planner before the profiles existed, and
    again when issue 19 appended its scenarios (testbed.scenarios.beside and
    .mtasts) to the catalogue, which gives them domains the others had."""
    plan = make_plan(n=600, seed=7, net=42, now=NOW)
    truth = [
        (t.domain, t.scenario, t.verdict.value, [(x.host, x.verdict.value) for x in t.mx_hosts])
        for t in plan.truth
    ]
    zones = [
        (z.origin, z.signed, z.parent_ds.value, z.lame, [(r.owner, r.rtype) for r in z.records])
        for z in plan.zones
    ]
    listeners = [(x.address, x.behavior.value, sorted(x.chains)) for x in plan.listeners]
    digests = [hashlib.sha256(repr(x).encode()).hexdigest()[:16] for x in (truth, zones, listeners)]
    assert digests == ["01072e4b12c64276", "c5cebb2c7c00cd4e", "a243be59e52a1fb4"]
    assert all(z.server is None for z in plan.zones)
    assert all(x.pushback.is_default for x in plan.listeners)
    assert not plan.operators


def test_what_a_testbed_leaves_out_its_truth_leaves_out() -> None:
    plan = make_plan(n=600, seed=7, net=42, now=NOW, postfix=False, ipv6=False)
    scenarios = {t.scenario for t in plan.truth}
    assert "postfix_dane" not in scenarios
    assert "dual_stack" not in scenarios
    assert plan.postfix is None
    assert len(plan.truth) == 600


def test_truth_parquet_round_trip(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "truth.parquet"
    write_truth(path, plan.truth, plan.policy)
    assert read_policy(path) == json.loads(retry_policy(1.0).to_json())
    table = pq.read_table(path)
    assert table.column_names[:5] == [
        "domain",
        "scenario",
        "verdict",
        "mx_hosts",
        "verdict_relaxed",
    ]
    assert "verdict_in_30_days" in table.column_names
    rows = table.to_pylist()
    assert [r["domain"] for r in rows] == plan.domains
    relaxed = {(r["scenario"], r["verdict"], r["verdict_relaxed"]) for r in rows}
    assert ("unsigned_dane_provider", "no_dane", "dane_valid") in relaxed
    assert all(v == rv for s, v, rv in relaxed if s != "unsigned_dane_provider")
    first = plan.truth[0]
    assert rows[0]["mx_hosts"] == [
        {"host": h.host.rstrip("."), "verdict": h.verdict.value} for h in first.mx_hosts
    ]


def test_scan_args_allow_every_mail_address_of_the_testbed_and_no_more(plan: Plan) -> None:
    args = plan.scan_args
    assert args == ["--allow-range", "127.42.0.0/16", "--allow-range", "::1/128"]
    policy = ContactPolicy.build(allow=args[1::2])
    published = {
        record.rdata
        for zone in plan.zones
        for record in zone.records
        if record.rtype in ("A", "AAAA") and not record.owner.startswith("dnssec-failed.")
    }
    addresses = published | {listener.address for listener in plan.listeners}
    assert addresses
    assert all(policy.refusal(ipaddress.ip_address(a)) is None for a in addresses)
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is not None
    assert policy.refusal(ipaddress.ip_address("127.43.0.1")) is not None
    without_ipv6 = make_plan(n=600, seed=7, net=42, now=NOW, ipv6=False)
    assert without_ipv6.scan_args == ["--allow-range", "127.42.0.0/16"]
