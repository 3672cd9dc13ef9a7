"""testbed.dns against real servers: a small signed tree served by NSD and
validated by Unbound, checked with dnspython as the oracle (RFC 4033-4035)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from testbed.dns import DnsBuild, build_dns, derive_key, probe_dns, start_dns
from testbed.model import DsMode, Record, Zone
from testbed.procs import ProcessTable, TestbedError, ensure_free

SEED = 20240601
TLSA = "3 1 1 " + hashlib.sha256(b"leaf").hexdigest()
# 25 SHA-512 records: about 2 kB, more than the 1232-byte EDNS payload.
BIG_TLSA = [f"3 1 2 {hashlib.sha512(str(i).encode()).hexdigest()}" for i in range(25)]


def _rr(owner: str, rtype: str, rdata: str) -> Record:
    return Record(owner, 300, rtype, rdata)


def _zones() -> list[Zone]:
    mail = "127.99.0.25"
    return [
        Zone("."),
        Zone("example."),
        Zone("alt.", signed=False, records=(_rr("plain.alt.", "MX", "10 mx.plain.alt."),)),
        Zone(
            "good.example.",
            records=(
                _rr("good.example.", "MX", "10 mx.good.example."),
                _rr("mx.good.example.", "A", mail),
                _rr("_25._tcp.mx.good.example.", "TLSA", TLSA),
                *(_rr("_25._tcp.big.good.example.", "TLSA", r) for r in BIG_TLSA),
            ),
        ),
        Zone(
            "insecure.example.",
            signed=False,
            parent_ds=DsMode.NONE,
            records=(_rr("insecure.example.", "MX", "10 mx.insecure.example."),),
        ),
        Zone(
            "wrongds.example.",
            parent_ds=DsMode.WRONG,
            records=(_rr("wrongds.example.", "MX", "10 mx.good.example."),),
        ),
        Zone(
            "expired.example.",
            expired=True,
            records=(_rr("expired.example.", "MX", "10 mx.good.example."),),
        ),
        Zone(
            "corrupt.example.",
            corrupt_rrsets=(("corrupt.example.", "MX"),),
            records=(
                _rr("corrupt.example.", "MX", "10 mx.corrupt.example."),
                _rr("mx.corrupt.example.", "A", mail),
            ),
        ),
        Zone(
            "lame.example.", lame=True, records=(_rr("lame.example.", "MX", "10 mx.lame.example."),)
        ),
        # A zone cut at _25._tcp below a secure host, as the catalogue's lame_tlsa makes.
        Zone("_25._tcp.mx2.good.example.", lame=True),
    ]


def _free_net(rng: random.Random) -> int:
    """A 127.<net>.255.0/24 block whose first addresses are free on port 53."""
    for _ in range(20):
        net = rng.randrange(100, 201)
        try:
            for host in range(1, 4):
                ensure_free(f"127.{net}.255.{host}", 53)
        except TestbedError:
            continue
        return net
    raise AssertionError("no free loopback block for the test servers")


@dataclass(frozen=True)
class Addresses:
    auth: str
    resolver: str
    lame: str


def _addresses(net: int) -> Addresses:
    return Addresses(f"127.{net}.255.1", f"127.{net}.255.2", f"127.{net}.255.3")


def _build(zones: list[Zone], workdir: Path, addresses: Addresses) -> DnsBuild:
    return build_dns(
        zones,
        workdir,
        auth_address=addresses.auth,
        resolver_address=addresses.resolver,
        lame_address=addresses.lame,
        seed=SEED,
        now=dt.datetime.now(dt.UTC),
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsBuild]:
    addresses = _addresses(_free_net(random.Random()))
    workdir = tmp_path_factory.mktemp("testbed")
    build = _build(_zones(), workdir / "dns", addresses)
    table = ProcessTable(workdir / "processes.json")
    try:
        start_dns(build, table, timeout=20)
        yield build
    finally:
        table.stop_all()


def _ask(
    tree: DnsBuild, name: str, rtype: str, *, tcp: bool = False, timeout: float = 8.0
) -> dns.message.Message:
    query = dns.message.make_query(name, rtype, want_dnssec=True, payload=1232)
    query.flags |= dns.flags.AD
    if tcp:
        return dns.query.tcp(query, tree.resolver_address, timeout=timeout)
    return dns.query.udp(query, tree.resolver_address, timeout=timeout)


def _secure(answer: dns.message.Message) -> bool:
    return bool(answer.flags & dns.flags.AD)


def _records(answer: dns.message.Message, rtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rtype)
    return [rd.to_text() for rrset in answer.answer if rrset.rdtype == kind for rd in rrset]


# -- key material, checked against dnspython -------------------------------------


def test_ds_and_key_tag_match_dnspython() -> None:
    key = derive_key(SEED)
    dnskey = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey_text)
    assert isinstance(dnskey, dns.rdtypes.ANY.DNSKEY.DNSKEY)
    assert key.key_tag == dns.dnssec.key_id(dnskey)
    for owner in (".", "example.", "_25._tcp.mx.good.example."):
        expected = dns.dnssec.make_ds(dns.name.from_text(owner), dnskey, "SHA256")
        assert key.ds_text(owner) == expected.to_text().upper()
        assert key.ds_text(owner, wrong=True) != expected.to_text().upper()


def test_the_key_depends_on_the_seed_only() -> None:
    assert derive_key(SEED) == derive_key(SEED)
    assert derive_key(SEED).public_key != derive_key(SEED + 1).public_key


def test_the_trust_anchor_is_the_root_ds(tree: DnsBuild) -> None:
    key = derive_key(SEED)
    assert tree.trust_anchor.read_text() == f". 3600 IN DS {key.ds_text('.')}\n"


# -- validation outcomes through Unbound ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "rtype", "expected"),
    [
        ("good.example.", "MX", "10 mx.good.example."),
        ("mx.good.example.", "A", "127.99.0.25"),
        ("_25._tcp.mx.good.example.", "TLSA", TLSA),
        ("mx.corrupt.example.", "A", "127.99.0.25"),
    ],
)
def test_secure_answers_have_ad(tree: DnsBuild, name: str, rtype: str, expected: str) -> None:
    answer = _ask(tree, name, rtype)
    assert answer.rcode() == dns.rcode.NOERROR
    assert _secure(answer)
    assert _records(answer, rtype) == [expected]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("insecure.example.", "10 mx.insecure.example."), ("plain.alt.", "10 mx.plain.alt.")],
)
def test_insecure_answers_have_no_ad(tree: DnsBuild, name: str, expected: str) -> None:
    answer = _ask(tree, name, "MX")
    assert answer.rcode() == dns.rcode.NOERROR
    assert not _secure(answer)
    assert _records(answer, "MX") == [expected]


@pytest.mark.parametrize(
    ("name", "rtype"),
    [
        ("wrongds.example.", "MX"),
        ("expired.example.", "MX"),
        ("corrupt.example.", "MX"),
        ("lame.example.", "MX"),
        ("_25._tcp.mx2.good.example.", "TLSA"),
    ],
)
def test_bogus_and_lame_give_servfail(tree: DnsBuild, name: str, rtype: str) -> None:
    answer = _ask(tree, name, rtype)
    assert answer.rcode() == dns.rcode.SERVFAIL


def test_bogus_answers_carry_an_extended_error(tree: DnsBuild) -> None:
    answer = _ask(tree, "wrongds.example.", "MX")
    assert answer.rcode() == dns.rcode.SERVFAIL
    assert any(option.otype == dns.edns.EDE for option in answer.options)


def test_secure_nxdomain_has_ad(tree: DnsBuild) -> None:
    answer = _ask(tree, "missing.good.example.", "MX")
    assert answer.rcode() == dns.rcode.NXDOMAIN
    assert _secure(answer)


def test_secure_nodata_has_ad(tree: DnsBuild) -> None:
    answer = _ask(tree, "good.example.", "TXT")
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.answer == []
    assert _secure(answer)


def test_a_large_tlsa_rrset_is_truncated_over_udp_and_complete_over_tcp(tree: DnsBuild) -> None:
    name = "_25._tcp.big.good.example."
    over_udp = _ask(tree, name, "TLSA")
    assert over_udp.flags & dns.flags.TC
    over_tcp = _ask(tree, name, "TLSA", tcp=True)
    assert _secure(over_tcp)
    assert sorted(_records(over_tcp, "TLSA")) == sorted(BIG_TLSA)


def test_probe_reports_rcode_and_ad(tree: DnsBuild) -> None:
    assert probe_dns(tree.resolver_address, recursion=True) == (0, True)
    assert probe_dns(tree.auth_address, recursion=False) == (0, False)


def test_probe_of_a_silent_address_is_none(tree: DnsBuild) -> None:
    assert probe_dns(tree.lame_address, recursion=True, timeout=0.2) is None


# -- builds, cache and process handling ----------------------------------------------


def test_a_second_build_signs_nothing(tree: DnsBuild) -> None:
    signed = sorted(tree.workdir.glob("zones/*.signed"))
    before = {path: path.read_bytes() for path in signed}
    again = build_dns(
        _zones(),
        tree.workdir,
        seed=SEED,
        now=dt.datetime.now(dt.UTC),
        auth_address=tree.auth_address,
        resolver_address=tree.resolver_address,
        lame_address=tree.lame_address,
    )
    assert (again.signed, again.reused) == (0, tree.signed)
    assert {path: path.read_bytes() for path in signed} == before


def test_lame_zones_are_delegated_but_not_served(tree: DnsBuild) -> None:
    conf = tree.nsd_conf.read_text()
    assert 'name: "good.example."' in conf
    assert 'name: "lame.example."' not in conf
    assert tree.zones == len(_zones()) - 2


def test_non_loopback_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match=r"192\.0\.2\.1 is not loopback"):
        _build(_zones(), tmp_path, Addresses("192.0.2.1", "127.0.0.2", "127.0.0.3"))


def test_a_corruption_target_must_exist(tmp_path: Path) -> None:
    zones = [Zone("."), Zone("example.", corrupt_rrsets=(("nothing.example.", "MX"),))]
    with pytest.raises(TestbedError, match=r"no signed nothing\.example\. MX RRset"):
        _build(zones, tmp_path, _addresses(100))


def test_start_fails_on_a_taken_port_and_stop_leaves_nothing(tmp_path: Path) -> None:
    addresses = _addresses(_free_net(random.Random()))
    build = _build([Zone("."), Zone("example.")], tmp_path, addresses)
    table = ProcessTable(tmp_path / "processes.json")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((addresses.resolver, 53))
        with pytest.raises(TestbedError, match=r"\.2:53 is already in use \(udp\)"):
            start_dns(build, table, timeout=10)
    assert table.running() == {}
    try:
        start_dns(build, table, timeout=10)
        assert probe_dns(addresses.resolver, recursion=True) == (0, True)
        pids = {entry["pid"] for entry in json.loads(table.path.read_text()).values()}
        assert len(pids) == 2
    finally:
        table.stop_all()
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert probe_dns(addresses.auth, recursion=False, timeout=0.2) is None


def test_a_zone_nsd_cannot_load_stops_the_start(tmp_path: Path) -> None:
    broken = Record("x.alt.", 300, "MX", "ten mx.x.alt.")
    zones = [Zone("."), Zone("alt.", (broken,), signed=False)]
    build = _build(zones, tmp_path, _addresses(_free_net(random.Random())))
    table = ProcessTable(tmp_path / "processes.json")
    with pytest.raises(TestbedError, match=r"NSD could not load every zone: .*alt\.txt:4"):
        start_dns(build, table, timeout=10)
    assert table.running() == {}
    assert probe_dns(build.auth_address, recursion=False, timeout=0.2) is None


def test_a_wrong_trust_anchor_never_gets_ready(tmp_path: Path) -> None:
    build = _build([Zone(".")], tmp_path, _addresses(_free_net(random.Random())))
    anchor = derive_key(SEED + 1).ds_text(".")
    build.trust_anchor.write_text(f". 3600 IN DS {anchor}\n")
    table = ProcessTable(tmp_path / "processes.json")
    with pytest.raises(TestbedError, match=r"unbound not ready after 2 s \(killed\)"):
        start_dns(build, table, timeout=2)
    assert table.running() == {}
    assert probe_dns(build.auth_address, recursion=False, timeout=0.2) is None
