"""The vocabulary scenarios are written in: domains, zones, mail hosts, chains
and TLSA records, accumulated into the data of testbed.model.

A scenario (testbed.scenarios) calls these methods to lay out one domain and
returns what a correct scanner must conclude about it. TLSA data comes from
testbed.pki (tlsa_rdata), computed independently of the scanner's matcher.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from scanner.status import DaneVerdict, DomainVerdict
from testbed.dns.txt import txt_rdata
from testbed.model import Behavior, DsMode, HttpsSite, Listener, Record, StsServe, Zone
from testbed.pki import Issued, KeyType, Pki
from testbed.profile import OperatorKind

SIGNED_TLDS = ("example.", "test.")
UNSIGNED_TLD = "alt."
TTL = 3600
IPV6_ADDRESS = "::1"
BOGUS_PROBE = "dnssec-failed.test."
# The largest policy body a sender accepts (the scanner's bound, ISSUE19: 64 KiB);
# a TOO_LARGE site serves a kibibyte more.
STS_BODY_LIMIT = 64 * 1024
STS_SITES_PER_ADDRESS = 32

_WORDS_A = (
    "amber", "brisk", "cedar", "delta", "ember", "fable", "gala", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "maple", "nimbus", "onyx", "pixel", "quartz", "rowan",
    "sierra", "tundra", "umber", "vivid", "willow", "xenon", "yonder", "zephyr",
)  # fmt: skip
_WORDS_B = (
    "works", "labs", "mail", "net", "shop", "media", "group", "systems", "studio",
    "trade", "cloud", "data", "hub", "point", "line", "craft", "field", "forge",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HostTruth:
    host: str
    verdict: DaneVerdict


@dataclass(frozen=True, slots=True)
class BesideTruth:
    """What a scan must conclude of a domain beside DANE (issue 19): each
    value as the dataset writes it; None where a scenario states nothing.
    Host tuples follow the hosts in the order laid out."""

    verdict_in_30_days: DomainVerdict | None = None  # scan --days-ahead 30
    mta_sts_record: str | None = None  # TxtRecordStatus
    mta_sts_fetch: str | None = None  # FetchStatus
    mta_sts_mode: str | None = None  # StsMode
    tlsrpt_record: str | None = None  # TxtRecordStatus
    effective_policy: str | None = None
    effective_outcome: str | None = None
    host_mta_sts: tuple[str | None, ...] | None = None  # StsHostStatus
    host_requiretls: tuple[bool | None, ...] | None = None
    host_downgrade: tuple[tuple[str, ...], ...] | None = None  # DowngradeSign values


UNSTATED = BesideTruth()


@dataclass(frozen=True, slots=True)
class DomainTruth:
    domain: str
    scenario: str
    verdict: DomainVerdict
    mx_hosts: tuple[HostTruth, ...]
    # As a sender that uses DANE under an insecure MX RRset sees it (None: unstated).
    verdict_relaxed: DomainVerdict | None = None
    beside: BesideTruth = UNSTATED


@dataclass(slots=True)
class ZoneDraft:
    origin: str
    signed: bool = True
    parent_ds: DsMode = DsMode.MATCH
    lame: bool = False
    expired: bool = False
    # On the internet profile, the kind of DNS operator that must serve it
    # (None: any operator that answers, by share).
    operator: OperatorKind | None = None
    records: list[Record] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)

    def add(self, owner: str, rtype: str, rdata: str, ttl: int = TTL) -> None:
        self.records.append(Record(owner, ttl, rtype, rdata))

    def freeze(self, server: str | None = None) -> Zone:
        return Zone(
            origin=self.origin,
            records=tuple(self.records),
            signed=self.signed,
            parent_ds=self.parent_ds,
            lame=self.lame,
            expired=self.expired,
            corrupt_rrsets=tuple(self.corrupt),
            server=server,
        )


@dataclass(slots=True)
class _ListenerDraft:
    behavior: Behavior
    chains: dict[str, str] = field(default_factory=dict)
    default_chain: str | None = None
    hosts: int = 0
    tls_extensions: tuple[str, ...] = ()


def flip_last_hex(rdata: str) -> str:
    """The same record with the last nibble of its data changed: matches nothing."""
    last = rdata[-1]
    return rdata[:-1] + ("0" if last != "0" else "1")


class Builder:
    """Accumulates zones, listeners and chains for one testbed.

    With ``zone_per_domain`` (the internet profile) every unsigned domain is a
    zone of its own, as on the real internet, so that its DNS operator
    answers for it; otherwise unsigned domains are plain names in their TLD,
    which keeps a million-domain loopback testbed cheap.
    """

    def __init__(
        self, *, seed: int, net: int, now: dt.datetime, zone_per_domain: bool = False
    ) -> None:
        if not 1 <= net <= 254:
            raise ValueError("net must be in 1..254 (addresses are 127.<net>.x.y)")
        self.seed = seed
        self.net = net
        self.now = now
        self.zone_per_domain = zone_per_domain
        self.rng = random.Random(seed)
        self.pki = Pki(seed=seed, now=now)
        self.zones: dict[str, ZoneDraft] = {}
        self.chains: dict[str, list[Issued]] = {}
        self._listeners: dict[str, _ListenerDraft] = {}
        self._sites: list[HttpsSite] = []
        self._site_pool: tuple[str | None, int] = (None, 0)
        self._names: set[str] = set()
        self._addresses = self._address_iter()
        self._pools: dict[str, str] = {}
        # Shared infrastructure (providers) laid out once, on first use.
        self.shared: dict[str, object] = {}
        # (MX host name, chain id) of the one domain served by the real Postfix.
        self.postfix: tuple[str, str] | None = None
        self.zone(".", signed=True)
        for tld in SIGNED_TLDS:
            self.zone(tld, signed=True)
        self.zone(UNSIGNED_TLD, signed=False, parent_ds=DsMode.NONE)
        # A fixed bogus name, as dnssec-failed.org is on the real internet: a
        # scanner's resolver check expects it to fail validation.
        self.zone(BOGUS_PROBE, parent_ds=DsMode.WRONG).add(BOGUS_PROBE, "A", "127.0.0.1")

    # -- infrastructure addresses (127.<net>.255.x) -------------------------

    @property
    def auth_address(self) -> str:
        return f"127.{self.net}.255.1"

    @property
    def resolver_address(self) -> str:
        return f"127.{self.net}.255.2"

    @property
    def lame_address(self) -> str:
        return f"127.{self.net}.255.254"

    @property
    def postfix_address(self) -> str:
        return f"127.{self.net}.255.25"

    @property
    def layer_addresses(self) -> tuple[str, str]:
        """The NSD instances for the root and the TLDs (the internet profile's)."""
        return f"127.{self.net}.255.3", f"127.{self.net}.255.4"

    def _address_iter(self) -> Iterator[str]:
        # 127.<net>.253-255.x hold the DNS operators and the infrastructure.
        for a in range(0, 253):
            for b in range(1, 255):
                yield f"127.{self.net}.{a}.{b}"
        raise RuntimeError("address space 127.<net>.0.0/16 exhausted")

    def new_address(self) -> str:
        return next(self._addresses)

    # -- zones and names ---------------------------------------------------

    def zone(
        self,
        origin: str,
        *,
        signed: bool = True,
        parent_ds: DsMode = DsMode.MATCH,
        lame: bool = False,
        expired: bool = False,
        operator: OperatorKind | None = None,
    ) -> ZoneDraft:
        if origin in self.zones:
            raise ValueError(f"zone {origin} defined twice")
        draft = ZoneDraft(
            origin, signed, parent_ds if signed else DsMode.NONE, lame, expired, operator
        )
        self.zones[origin] = draft
        return draft

    def zone_of(self, name: str) -> ZoneDraft:
        """The zone whose origin is the longest suffix of ``name``."""
        labels = name.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:]) or "."
            if candidate in self.zones:
                return self.zones[candidate]
        return self.zones["."]

    def add(self, owner: str, rtype: str, rdata: str, ttl: int = TTL) -> None:
        self.zone_of(owner).add(owner, rtype, rdata, ttl)

    def new_name(self, tld: str) -> str:
        """A fresh, plausible second-level name under ``tld``."""
        while True:
            word = self.rng.choice(_WORDS_A) + self.rng.choice(_WORDS_B)
            name = f"{word}{self.rng.randrange(1, 100000)}.{tld}"
            if name not in self._names and name not in self.zones:
                self._names.add(name)
                return name

    def signed_tld(self) -> str:
        return SIGNED_TLDS[0] if self.rng.random() < 0.6 else SIGNED_TLDS[1]

    def signed_domain(
        self,
        *,
        parent_ds: DsMode = DsMode.MATCH,
        expired: bool = False,
        operator: OperatorKind | None = None,
    ) -> tuple[str, ZoneDraft]:
        """A domain with a zone of its own, signed, delegated from a signed TLD."""
        name = self.new_name(self.signed_tld())
        return name, self.zone(name, parent_ds=parent_ds, expired=expired, operator=operator)

    def insecure_domain(self) -> tuple[str, ZoneDraft]:
        """A domain with an unsigned zone of its own under a signed TLD (no DS)."""
        name = self.new_name(self.signed_tld())
        return name, self.zone(name, signed=False)

    def unsigned_domain(self, *, operator: OperatorKind | None = None) -> str:
        """A domain in the unsigned TLD: a zone of its own with ``zone_per_domain``,
        else a plain name in the TLD (no zone cut: cheap at scale)."""
        name = self.new_name(UNSIGNED_TLD)
        if self.zone_per_domain or operator is not None:
            self.zone(name, signed=False, operator=operator)
        return name

    # -- mail hosts ----------------------------------------------------------

    def _listener(self, address: str, behavior: Behavior) -> _ListenerDraft:
        draft = self._listeners.get(address)
        if draft is None:
            draft = self._listeners[address] = _ListenerDraft(behavior)
        elif draft.behavior is not behavior:
            raise ValueError(f"{address} already behaves as {draft.behavior}")
        return draft

    def serve(
        self,
        address: str,
        names: Sequence[str],
        chain_id: str | None,
        behavior: Behavior = Behavior.STARTTLS,
        *,
        tls_extensions: tuple[str, ...] = (),
    ) -> None:
        """``address`` answers for SNI ``names`` with ``chain_id``; its EHLO
        reply over TLS also offers ``tls_extensions`` (e.g. REQUIRETLS)."""
        draft = self._listener(address, behavior)
        draft.hosts += 1
        draft.tls_extensions = tuple(dict.fromkeys((*draft.tls_extensions, *tls_extensions)))
        if chain_id is None:
            return
        for name in names:
            draft.chains[name.rstrip(".")] = chain_id
        if draft.default_chain is None:
            draft.default_chain = chain_id

    def pooled_address(self, pool: str, per_address: int = 8) -> str:
        """An address shared by up to ``per_address`` hosts, as at shared hosting."""
        address = self._pools.get(pool)
        if address is None or self._listeners[address].hosts >= per_address:
            address = self.new_address()
            self._listener(address, Behavior.STARTTLS)
            self._pools[pool] = address
        return address

    # -- MTA-STS and TLS-RPT (RFC 8461, RFC 8460) ------------------------------

    def txt(self, owner: str, *records: str | Sequence[str]) -> None:
        """One TXT record at ``owner`` per item of ``records``: a str is one
        record (split into 255-octet strings when longer), a sequence of str
        one record of those character-strings (testbed.dns.txt). Anything is
        published, malformed text included."""
        for record in records:
            self.add(owner, "TXT", txt_rdata(record))

    def mta_sts_record(self, domain: str, *records: str | Sequence[str]) -> None:
        """TXT at ``_mta-sts.<domain>`` (RFC 8461 section 3.1), e.g. "v=STSv1; id=20260101"."""
        self.txt(f"_mta-sts.{domain}", *records)

    def tls_rpt(self, domain: str, *records: str | Sequence[str]) -> None:
        """TXT at ``_smtp._tls.<domain>`` (RFC 8460 section 3), e.g.
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.net"."""
        self.txt(f"_smtp._tls.{domain}", *records)

    def mta_sts(
        self, domain: str, policy: str, serve: StsServe = StsServe.POLICY, *, ipv6: bool = False
    ) -> HttpsSite:
        """``mta-sts.<domain>`` with an A record on a testbed address and, on
        its port 443 (nginx, testbed.nginx), ``/.well-known/mta-sts.txt`` as
        ``serve`` says: ``policy`` is the text served where a body is (see
        sts_policy for a well-formed one). The certificate comes from the
        WebPKI roots (webpki_roots) unless ``serve`` says otherwise.

        ``ipv6`` adds an AAAA on ::1, where nginx serves the site too (the
        scenario must be registered with ipv6=True: ::1 is one address for
        every testbed on the machine, so port 443 there is nobody's to close,
        and a site with nothing to serve cannot have it)."""
        bare = domain.rstrip(".")
        name = f"mta-sts.{bare}"
        if ipv6 and serve in (StsServe.NO_HTTPS, StsServe.NO_ADDRESS):
            raise ValueError(f"{name}: {serve} cannot have an address on the shared ::1")
        if serve is StsServe.NO_ADDRESS:
            return self._site(HttpsSite(name, serve))
        if serve is StsServe.NO_HTTPS:
            address = self.new_address()
            self.add(f"{name}.", "A", address)
            return self._site(HttpsSite(name, serve, address))
        address = self._site_address()
        self.add(f"{name}.", "A", address)
        if ipv6:
            self.add(f"{name}.", "AAAA", IPV6_ADDRESS)
        if serve is StsServe.WRONG_NAME:
            chain = list(self.leaf([f"www.{bare}"], key_label=f"https/{name}"))
        elif serve is StsServe.UNTRUSTED:
            private = self.pki.ca("Testbed Private Web CA", KeyType.ECDSA)
            chain = list(self.leaf([name], key_label=f"https/{name}", issuer=private))
        else:
            chain = list(self.leaf([name], key_label=f"https/{name}"))
        body = {
            StsServe.NOT_FOUND: "",
            StsServe.REDIRECT: "",
            StsServe.TOO_LARGE: _padded(policy, STS_BODY_LIMIT + 1024),
        }.get(serve, policy)
        location = f"https://www.{bare}/.well-known/mta-sts.txt"
        return self._site(
            HttpsSite(
                name,
                serve,
                address,
                IPV6_ADDRESS if ipv6 else None,
                chain_id=self.chain(chain),
                body=body,
                location=location if serve is StsServe.REDIRECT else None,
            )
        )

    def _site(self, site: HttpsSite) -> HttpsSite:
        if any(s.name == site.name for s in self._sites):
            raise ValueError(f"{site.name} is laid out twice")
        self._sites.append(site)
        return site

    def _site_address(self) -> str:
        """An address of the testbed's web hoster, shared by up to
        STS_SITES_PER_ADDRESS sites told apart by SNI, as at real hosters."""
        address, count = self._site_pool
        if address is None or count >= STS_SITES_PER_ADDRESS:
            address, count = self.new_address(), 0
        self._site_pool = (address, count + 1)
        return address

    def sites(self) -> list[HttpsSite]:
        return list(self._sites)

    def webpki_roots(self) -> list[Issued]:
        """The roots a sender trusts for MTA-STS (RFC 8461 section 3.3, 4.2):
        the public-CA-like roots every ordinary leaf chains to, so MX hosts
        and mta-sts sites are PKIX-valid for their names; chains from other
        CAs ("Private Mail CA", "Testbed Private Web CA") are not."""
        return [self.public_ca(kind)[0] for kind in KeyType]

    def chain(self, chain: list[Issued]) -> str:
        chain_id = f"c{len(self.chains):06d}"
        self.chains[chain_id] = chain
        return chain_id

    # -- certificate helpers -------------------------------------------------

    def public_ca(self, kind: KeyType) -> tuple[Issued, Issued]:
        """A public-CA-like root and its issuing intermediate (as Let's Encrypt's E5/R10)."""
        tag = "E" if kind is KeyType.ECDSA else "R"
        root = self.pki.ca(f"Testbed Root {tag}1", kind)
        intermediate = self.pki.ca(
            f"Testbed Issuing {tag}5", kind, issuer=root, days_before=200, days_after=900
        )
        return root, intermediate

    def leaf(
        self,
        names: Sequence[str],
        kind: KeyType = KeyType.ECDSA,
        *,
        key_label: str | None = None,
        days_after: int = 60,
        issuer: Issued | None = None,
    ) -> tuple[Issued, Issued]:
        """A leaf for ``names`` and its issuer (the public intermediate by default)."""
        if issuer is None:
            issuer = self.public_ca(kind)[1]
        label = key_label if key_label is not None else names[0]
        leaf = self.pki.leaf(
            [n.rstrip(".") for n in names], issuer, kind, key_label=label, days_after=days_after
        )
        return leaf, issuer

    # -- results ---------------------------------------------------------------

    def listeners(self) -> list[Listener]:
        return [
            Listener(
                address,
                d.behavior,
                dict(d.chains),
                d.default_chain,
                tls_extensions=d.tls_extensions,
            )
            for address, d in sorted(self._listeners.items(), key=_address_key)
        ]


def sts_policy(mode: str, mx: Sequence[str], max_age: int = 86400) -> str:
    """A policy file (RFC 8461 section 3.2) with CRLF line ends; ``mode`` is
    any text, so a scenario can also publish a bad one."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "".join(f"{line}\r\n" for line in lines)


def _padded(policy: str, size: int) -> str:
    """``policy`` followed by extension lines (section 3.2 lets a sender skip
    unknown keys) until the body holds more than ``size`` octets."""
    line = "x-padding: " + "0" * 52 + "\r\n"
    missing = size - len(policy.encode())
    return policy + line * (max(0, missing) // len(line) + 1)


def _address_key(item: tuple[str, object]) -> tuple[int, int]:
    ip = ipaddress.ip_address(item[0])
    return (ip.version, int(ip))
