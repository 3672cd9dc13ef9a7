"""The resolve stage (scanner.resolve.discover) against the whole simulated
internet: for every scenario of the catalogue, the DNS half of each domain's
outcome equals what truth.parquet and the zone data say.

One Discoverer run over every domain of the shared testbed, through its
validating Unbound, is checked per scenario:

- the MX decision (RFC 7672 section 2.2.1, RFC 7505): hosts, null, implicit,
  NXDOMAIN, or failed; its DNSSEC status (secure for signed zones, insecure
  for unsigned ones, bogus for the bogus scenarios, which conclude to
  ``dnssec_bogus``);
- the MX host list, in preference order, equals truth's;
- per host (RFC 7672 sections 2.2.2-2.2.3): addresses secure exactly when the
  host's zone is signed, and no TLSA lookup under insecure addresses; where
  truth's verdict is one DNS settles (no_dane_insecure, no_dane_absent,
  fail_dns), ``policy.dns_verdict`` gives it; everywhere else DNS leaves the
  verdict to the handshake: the addresses and a secure TLSA RRset at the right
  base domain equal what the authoritative server publishes (read with dig
  over TCP, a decoder independent of ours), 23 records over TCP for
  big_tlsa_rrset; CNAME hosts try the expanded name, then the alias.

And the per-host single-flight cache: every query is sent once, however many
domains share a provider's hosts. The policy records' TXT lookups (RFC 8461
section 3.1, RFC 8460 section 3) are two queries per domain, each a fact
(answered, or a validation failure), as DNSSEC-secure as the domain's zone.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from dataclasses import dataclass

import pytest
import uvloop

from scanner import names
from scanner.assemble import domain_verdict
from scanner.resolve.answer import DnsAnswer
from scanner.resolve.client import ClientStats, DnsClient, ResolverSettings
from scanner.resolve.discover import Discoverer, DomainResolution, HostResolution
from scanner.resolve.message import RdType
from scanner.resolve.policy import MxKind, TlsaState, dns_verdict, tlsa_bases, tlsa_name
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict
from scanner.tlsa import TlsaRecord
from testbed.plan import catalogue_for
from testbed.profile import Profile
from testbed.scenarios import BY_NAME
from tests.integration.support import Testbed

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

# The MTA-STS and TLS-RPT scenarios (testbed.scenarios.mtasts): each an
# unsigned domain with its MX host under it, since MTA-STS is what protects a
# domain that cannot sign (RFC 8461 section 1); the signed one, dane_and_sts,
# is named otherwise.
STS_UNSIGNED = tuple(
    s.name for s in catalogue_for(Profile.LOOPBACK) if s.name.startswith(("sts_", "tlsrpt_"))
)
# Scenarios whose domain (so its MX RRset) is in an unsigned zone: the bulk in
# the unsigned TLD, and a zone delegated without DS under a signed TLD.
UNSIGNED = frozenset(
    {
        "unsigned_provider",
        "unsigned_selfhosted",
        "unsigned_dane_provider",
        "unsigned_no_mx",
        "insecure_delegation_tlsa",
    }
) | frozenset(STS_UNSIGNED)
# Scenarios whose MX hosts are in an unsigned zone: the bulk provider in the
# unsigned TLD (also behind signed_insecure_host's secure MX) and hosts named
# under an unsigned domain.
UNSIGNED_HOSTS = frozenset(
    {
        "unsigned_provider",
        "unsigned_selfhosted",
        "unsigned_no_mx",
        "insecure_delegation_tlsa",
        "signed_insecure_host",
    }
) | frozenset(STS_UNSIGNED)
# What the domain verdict says about the MX lookup; any other verdict means
# the MX RRset lists hosts.
MX_KIND_OF = {
    DomainVerdict.NULL_MX: MxKind.NULL,
    DomainVerdict.NXDOMAIN: MxKind.NXDOMAIN,
    DomainVerdict.NO_MX_RECORD: MxKind.IMPLICIT,
    DomainVerdict.DNSSEC_BOGUS: MxKind.FAILED,
}
# Host verdicts that DNS alone settles (scanner.resolve.policy.dns_verdict).
DNS_SETTLED = frozenset(
    {DaneVerdict.NO_DANE_INSECURE, DaneVerdict.NO_DANE_ABSENT, DaneVerdict.FAIL_DNS}
)
BIG_TLSA_RECORDS = 23  # testbed.scenarios.big_tlsa_rrset: 22 decoys and the real one


class CountingClient:
    """Asks through a DnsClient, counting the (name, type) of every query."""

    def __init__(self, client: DnsClient) -> None:
        self._client = client
        self.asked: Counter[tuple[str, int]] = Counter()

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        self.asked[names.absolute(name), int(rdtype)] += 1
        return self._client.ask(name, rdtype)


def bases_asked(host: HostResolution) -> tuple[str, ...]:
    """The TLSA base domains the Discoverer asked for ``host``, in order: the
    candidates of RFC 7672 section 2.2.2 up to the one whose RRset it kept."""
    if host.tlsa.state is TlsaState.NOT_LOOKED_UP:
        return ()
    bases = tlsa_bases(host.host, host.addresses)
    return bases[: bases.index(host.tlsa.base) + 1]


class ZoneData:
    """Records as the authoritative server (NSD) serves them, read with dig
    over TCP: the zone data, decoded independently of the scanner's codec
    (dig, unlike dnspython, also shows TLSA records whose digest length is
    wrong). Answers are memoised: providers' hosts recur."""

    def __init__(self, server: str) -> None:
        self._address, self._port = server.rsplit(":", 1)
        self._seen: dict[tuple[str, str], list[list[str]]] = {}

    def tlsa(self, base: str) -> list[TlsaRecord]:
        """The TLSA RRset at ``_25._tcp.<base>``, sorted."""
        found = [
            TlsaRecord(int(f[0]), int(f[1]), int(f[2]), bytes.fromhex("".join(f[3:])))
            for f in self._rdata(f"_25._tcp.{base}", "TLSA")
        ]
        return sorted(found)

    def addresses(self, host: str) -> set[str]:
        """A and AAAA of ``host``, following an in-zone CNAME as NSD does."""
        return {f[0] for rtype in ("A", "AAAA") for f in self._rdata(host, rtype)}

    def _rdata(self, name: str, rtype: str) -> list[list[str]]:
        key = (name, rtype)
        if key not in self._seen:
            out = subprocess.run(
                ["dig", f"@{self._address}", "-p", self._port, "+norecurse", "+tcp", "+time=5",
                 "+tries=1", "+noall", "+answer", name, rtype],
                capture_output=True, text=True, check=True, timeout=30,
            ).stdout  # fmt: skip
            lines = [line.split() for line in out.splitlines()]
            self._seen[key] = [f[4:] for f in lines if len(f) > 4 and f[3] == rtype]
        return self._seen[key]


@dataclass(frozen=True)
class Discovery:
    """Everything one Discoverer run over the whole testbed produced."""

    resolutions: dict[str, DomainResolution]  # by domain as in truth (no trailing dot)
    asked: Counter[tuple[str, int]]
    stats: ClientStats
    cache_misses: int
    cache_hits: int


async def _discover_all(testbed: Testbed, domains: list[str]) -> Discovery:
    settings = ResolverSettings(servers=(str(testbed.state["resolver"]),), timeout=2.0)
    async with DnsClient(settings) as client:
        counting = CountingClient(client)
        discoverer = Discoverer(counting)
        found = await asyncio.gather(*(discoverer.domain(d) for d in domains))
        assert client.pending == 0
        cache = discoverer.host_cache
        return Discovery(
            dict(zip(domains, found, strict=True)),
            counting.asked,
            client.stats,
            cache.misses,
            cache.hits + cache.joined,  # finished values reused, or joined in flight
        )


@pytest.fixture(scope="module")
def discovery(testbed: Testbed) -> Discovery:
    domains = [str(row["domain"]) for row in testbed.truth]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_discover_all(testbed, domains))


@pytest.fixture(scope="module")
def zone_data(testbed: Testbed) -> ZoneData:
    return ZoneData(str(testbed.state["auth_server"]))


def _expected_mx_dnssec(scenario: str, verdict: DomainVerdict) -> DnssecStatus:
    if verdict is DomainVerdict.DNSSEC_BOGUS:
        return DnssecStatus.BOGUS
    return DnssecStatus.INSECURE if scenario in UNSIGNED else DnssecStatus.SECURE


def _expected_base(scenario: str, domain: str, host: str) -> str:
    """The TLSA base domain holding the records (testbed.scenarios._cname)."""
    return f"srv.{domain}." if scenario == "cname_tlsa_expanded" else host


def _check_host(
    scenario: str,
    domain: str,
    resolution: DomainResolution,
    host: HostResolution,
    truth_verdict: DaneVerdict,
    zone_data: ZoneData,
) -> list[str]:
    """What is wrong with one host's DNS outcome (empty if nothing)."""
    where = f"{domain} {host.host}"
    problems = []
    secure = scenario not in UNSIGNED_HOSTS
    if (host.addresses.dnssec is DnssecStatus.SECURE) is not secure:
        problems.append(f"{where}: addresses {host.addresses.dnssec}, expected secure={secure}")
    if not secure and host.tlsa.state is not TlsaState.NOT_LOOKED_UP:
        # RFC 7672 section 2.2.2: no TLSA lookup for a host with insecure addresses.
        problems.append(f"{where}: TLSA looked up under insecure addresses ({host.tlsa})")
    decided = dns_verdict(resolution.mx.dane_applies, host.addresses, host.tlsa)
    if truth_verdict in DNS_SETTLED:
        if decided is not truth_verdict:
            problems.append(f"{where}: dns_verdict {decided}, truth {truth_verdict} ({host})")
        return problems
    published = zone_data.addresses(host.host)
    if not published or set(host.addresses.addresses) != published:
        problems.append(f"{where}: addresses {host.addresses.addresses}, zone has {published}")
    if decided is not None or host.tlsa.state is not TlsaState.RECORDS:
        problems.append(f"{where}: DNS settled {decided}, TLSA {host.tlsa.state} ({host})")
    base = _expected_base(scenario, domain, host.host)
    if host.tlsa.base != base:
        problems.append(f"{where}: TLSA base {host.tlsa.base}, expected {base}")
    expected = zone_data.tlsa(base)
    if not expected or sorted(host.tlsa.records) != expected:
        problems.append(f"{where}: TLSA {sorted(host.tlsa.records)}, zone has {expected}")
    return problems


def _check_domain(
    scenario: str, row: dict[str, object], resolution: DomainResolution, zone_data: ZoneData
) -> list[str]:
    domain = str(row["domain"])
    verdict = DomainVerdict(str(row["verdict"]))
    truth_hosts = row["mx_hosts"]
    assert isinstance(truth_hosts, list)
    mx = resolution.mx
    problems = []
    kind = MX_KIND_OF.get(verdict, MxKind.HOSTS)
    dnssec = _expected_mx_dnssec(scenario, verdict)
    if (mx.kind, mx.dnssec) != (kind, dnssec):
        problems.append(f"{domain}: MX {mx.kind}/{mx.dnssec}, expected {kind}/{dnssec} ({mx})")
    if kind is not MxKind.HOSTS and domain_verdict(mx, ()) is not verdict:
        problems.append(f"{domain}: concludes {domain_verdict(mx, ())}, truth {verdict}")
    names = [str(h["host"]) for h in truth_hosts]
    targets = [t.host.rstrip(".") for t in mx.targets]
    resolved = [h.host.rstrip(".") for h in resolution.hosts]
    if targets != names or resolved != names:
        problems.append(f"{domain}: MX hosts {targets}, resolved {resolved}, truth {names}")
        return problems
    for host, truth_host in zip(resolution.hosts, truth_hosts, strict=True):
        truth_verdict = DaneVerdict(str(truth_host["verdict"]))
        problems += _check_host(scenario, domain, resolution, host, truth_verdict, zone_data)
    return problems


@pytest.mark.parametrize("scenario", [s.name for s in catalogue_for(Profile.LOOPBACK)])
def test_dns_outcome_matches_truth(
    scenario: str, testbed: Testbed, discovery: Discovery, zone_data: ZoneData
) -> None:
    rows = testbed.by_scenario(scenario)
    if not rows and BY_NAME[scenario].ipv6 and not testbed.state["ipv6"]:
        pytest.skip("the shared testbed was brought up without IPv6")
    assert rows, f"the testbed has no {scenario} domain"
    problems: list[str] = []
    for row in rows:
        resolution = discovery.resolutions[str(row["domain"])]
        problems += _check_domain(scenario, row, resolution, zone_data)
    assert not problems, f"{len(problems)} problems, the first: " + "\n".join(problems[:5])


def test_unsigned_names_are_scenarios() -> None:
    """The hand-kept table above must follow renames in the catalogue."""
    assert BY_NAME.keys() >= UNSIGNED | UNSIGNED_HOSTS
    # A rename of the MTA-STS scenarios would empty the prefix match above.
    assert {"sts_enforce", "tlsrpt_malformed"} <= set(STS_UNSIGNED)


def test_big_tlsa_rrset_comes_whole_over_tcp(testbed: Testbed, discovery: Discovery) -> None:
    rows = testbed.by_scenario("big_tlsa_rrset")
    assert rows
    for row in rows:
        (host,) = discovery.resolutions[str(row["domain"])].hosts
        assert (host.tlsa.state, len(host.tlsa.records)) == (TlsaState.RECORDS, BIG_TLSA_RECORDS)
    # Only these RRsets exceed the 1232-octet EDNS payload: one TCP retry each.
    assert discovery.stats.tcp == len(rows)


@pytest.mark.parametrize(
    ("scenario", "tried"),
    [("cname_tlsa_expanded", ("srv",)), ("cname_tlsa_original", ("srv", "mx"))],
)
def test_cname_hosts_try_the_expanded_name_first(
    scenario: str, tried: tuple[str, ...], testbed: Testbed, discovery: Discovery
) -> None:
    """RFC 7672 section 2.2.2: the target of a secure CNAME first, then the alias."""
    rows = testbed.by_scenario(scenario)
    assert rows
    for row in rows:
        domain = str(row["domain"])
        (host,) = discovery.resolutions[domain].hosts
        assert host.host == f"mx.{domain}."
        assert host.addresses.expanded == f"srv.{domain}."
        assert host.addresses.dnssec is DnssecStatus.SECURE
        asked = {
            label: discovery.asked[tlsa_name(f"{label}.{domain}."), RdType.TLSA]
            for label in ("srv", "mx")
        }
        assert asked == {label: int(label in tried) for label in ("srv", "mx")}
        assert bases_asked(host) == tuple(f"{label}.{domain}." for label in tried)
        assert host.tlsa.base == f"{tried[-1]}.{domain}."


def test_shared_hosts_are_looked_up_once(discovery: Discovery) -> None:
    """Domains sharing a provider cost one set of host lookups: every (name,
    type) is asked once, and the host cache missed once per distinct host."""
    repeated = {key: n for key, n in discovery.asked.items() if n > 1}
    assert not repeated
    resolutions = discovery.resolutions.values()
    references = Counter(h.host for r in resolutions for h in r.hosts)
    # The test means something only if providers are shared widely.
    assert references.most_common(1)[0][1] >= 100
    assert discovery.cache_misses == len(references)
    assert discovery.cache_hits == sum(references.values()) - len(references)
    hosts = {h.host: h for r in resolutions for h in r.hosts}
    host_queries = sum(2 + len(bases_asked(h)) for h in hosts.values())  # A, AAAA, TLSA per base
    domain_queries = 3 * len(discovery.resolutions)  # MX, _mta-sts TXT, _smtp._tls TXT
    assert sum(discovery.asked.values()) == domain_queries + host_queries
    # UDP datagrams: one per query, plus a retransmission only after a timeout
    # (a loaded machine may delay Unbound's SERVFAIL for the lame TLSA zone).
    retransmissions = discovery.stats.sent - sum(discovery.asked.values())
    assert 0 <= retransmissions <= discovery.stats.timeouts


def test_policy_records_are_looked_up_once_per_domain(
    testbed: Testbed, discovery: Discovery
) -> None:
    """Each domain's two TXT lookups: asked once, never transient on the
    loopback testbed, secure exactly where the domain's zone is (bogus_mx
    breaks the MX RRset's signature only, so its other names stay secure)."""
    problems = []
    for row in testbed.truth:
        domain, scenario = str(row["domain"]), str(row["scenario"])
        resolution = discovery.resolutions[domain]
        verdict = DomainVerdict(str(row["verdict"]))
        expected = _expected_mx_dnssec(scenario, verdict)
        if scenario == "bogus_mx":
            expected = DnssecStatus.SECURE
        for found in (resolution.mta_sts_txt, resolution.tlsrpt_txt):
            if found is None:
                problems.append(f"{domain}: a TXT lookup not made")
                continue
            if discovery.asked[found.name, RdType.TXT] != 1 or found.transient:
                problems.append(
                    f"{domain}: {found} asked {discovery.asked[found.name, RdType.TXT]}"
                )
            if found.dnssec is not expected or found.answered is (expected is DnssecStatus.BOGUS):
                problems.append(f"{domain} ({scenario}): {found}, expected {expected}")
    assert not problems, f"{len(problems)} problems, the first: " + "\n".join(problems[:5])
