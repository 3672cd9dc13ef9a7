"""The testbed's MTA-STS side without servers: TXT rdata (checked by
dnspython as the oracle), the sites the builder lays out and their
certificates under the WebPKI roots (cryptography's verifier, RFC 8461
section 3.3), nginx's configuration, and testbed.json's scan_args."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from testbed import nginx
from testbed.builder import STS_BODY_LIMIT, Builder, sts_policy
from testbed.cli import allow_ranges, pkix_ca
from testbed.connlog import Outcome
from testbed.dns.txt import txt_rdata
from testbed.model import StsServe
from testbed.pki import KeyType

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
POLICY = sts_policy("enforce", ["mx.a.example"])


def _strings(rdata: str) -> tuple[bytes, ...]:
    parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata)
    return tuple(parsed.strings)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("record", "strings"),
    [
        ("v=STSv1; id=20261201", (b"v=STSv1; id=20261201",)),
        ("", (b"",)),
        ('quote " and back\\slash', (b'quote " and back\\slash',)),
        ("tab\there, é, \x00", ("tab\there, é, \x00".encode(),)),
        ("x" * 600, (b"x" * 255, b"x" * 255, b"x" * 90)),
        (
            ("v=TLSRPTv1; ", "rua=mailto:r@example.net"),
            (b"v=TLSRPTv1; ", b"rua=mailto:r@example.net"),
        ),
    ],
)
def test_txt_rdata_reads_back_as_the_strings_asked_for(
    record: str | tuple[str, ...], strings: tuple[bytes, ...]
) -> None:
    assert _strings(txt_rdata(record)) == strings


@pytest.mark.parametrize("record", [(), ("y" * 256,)])
def test_txt_rdata_refuses_what_no_record_can_hold(record: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="character-string"):
        txt_rdata(record)


def test_txt_records_are_published_one_per_item_at_their_names() -> None:
    b = Builder(seed=3, net=152, now=NOW)
    domain, zone = b.signed_domain()
    b.mta_sts_record(domain, "v=STSv1; id=1", "v=STSv1; id=2")
    b.tls_rpt(domain, ("v=TLSRPTv1;", "rua=mailto:r@example.net"))
    txt = [(r.owner, _strings(r.rdata)) for r in zone.records if r.rtype == "TXT"]
    assert txt == [
        (f"_mta-sts.{domain}", (b"v=STSv1; id=1",)),
        (f"_mta-sts.{domain}", (b"v=STSv1; id=2",)),
        (f"_smtp._tls.{domain}", (b"v=TLSRPTv1;", b"rua=mailto:r@example.net")),
    ]


def _verify(b: Builder, chain_id: str, name: str) -> None:
    leaf, *rest = b.chains[chain_id]
    roots = Store([r.cert for r in b.webpki_roots()])
    verifier = PolicyBuilder().store(roots).time(NOW).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf.cert, [c.cert for c in rest])


@pytest.fixture
def laid() -> tuple[Builder, dict[StsServe, str]]:
    b = Builder(seed=3, net=152, now=NOW)
    domains = {}
    for serve in StsServe:
        domain, _ = b.signed_domain()
        b.mta_sts(domain, POLICY, serve)
        domains[serve] = domain
    return b, domains


def test_each_serving_mode_lays_out_its_site(laid: tuple[Builder, dict[StsServe, str]]) -> None:
    b, domains = laid
    sites = {s.serve: s for s in b.sites()}
    for serve, domain in domains.items():
        site = sites[serve]
        assert site.name == f"mta-sts.{domain.rstrip('.')}"
        published = [r.rdata for r in b.zone_of(domain).records if r.owner == f"{site.name}."]
        assert published == ([] if serve is StsServe.NO_ADDRESS else [site.address])
        assert (site.chain_id is not None) == site.served
    assert sites[StsServe.POLICY].body == POLICY
    assert sites[StsServe.WRONG_MEDIA_TYPE].body == POLICY
    assert sites[StsServe.NOT_FOUND].body == ""
    large = sites[StsServe.TOO_LARGE].body
    assert large.startswith(POLICY)
    assert len(large.encode()) > STS_BODY_LIMIT
    assert sites[StsServe.REDIRECT].location == (
        f"https://www.{domains[StsServe.REDIRECT].rstrip('.')}/.well-known/mta-sts.txt"
    )
    # Served sites share the hoster's address; the one without HTTPS has its own.
    assert len(nginx.addresses(b.sites())) == 1
    assert sites[StsServe.NO_HTTPS].address not in nginx.addresses(b.sites())


def test_site_certificates_are_pkix_valid_unless_the_mode_says_otherwise(
    laid: tuple[Builder, dict[StsServe, str]],
) -> None:
    b, _ = laid
    for site in b.sites():
        if site.chain_id is None:
            continue
        if site.serve in (StsServe.WRONG_NAME, StsServe.UNTRUSTED):
            with pytest.raises(VerificationError):
                _verify(b, site.chain_id, site.name)
        else:
            _verify(b, site.chain_id, site.name)


@pytest.mark.parametrize("kind", list(KeyType))
def test_ordinary_mx_leaves_are_pkix_valid_under_the_webpki_roots(kind: KeyType) -> None:
    b = Builder(seed=3, net=152, now=NOW)
    leaf, issuer = b.leaf(["mx.a.example"], kind)
    _verify(b, b.chain([leaf, issuer]), "mx.a.example")
    private = b.pki.ca("Private Mail CA", KeyType.ECDSA)
    leaf, _ = b.leaf(["mx.b.example"], issuer=private)
    with pytest.raises(VerificationError):
        _verify(b, b.chain([leaf, private]), "mx.b.example")


def test_a_name_is_laid_out_once() -> None:
    b = Builder(seed=3, net=152, now=NOW)
    b.mta_sts("a.example.", POLICY)
    with pytest.raises(ValueError, match="twice"):
        b.mta_sts("a.example.", POLICY, StsServe.NOT_FOUND)


def test_sites_share_an_address_up_to_the_hosters_limit() -> None:
    b = Builder(seed=3, net=152, now=NOW)
    for i in range(40):
        b.mta_sts(f"d{i}.alt.", POLICY)
    listen = nginx.addresses(b.sites())
    assert len(listen) == 2
    assert [s.address for s in b.sites()].count(listen[0]) == 32


def test_nginx_config_has_one_server_per_served_site(
    laid: tuple[Builder, dict[StsServe, str]], tmp_path: Path
) -> None:
    b, _ = laid
    config = nginx.write_config(tmp_path / "https", b.sites(), pki_dir=tmp_path / "pki")
    text = config.read_text()
    served = [s for s in b.sites() if s.served]
    assert text.count("server {") == len(served) == len(StsServe) - 2
    for site in b.sites():
        assert (f"server_name {site.name};" in text) == site.served
    assert "return 301 https://www." in text
    assert "default_type text/html;" in text
    bodies = sorted(p.read_bytes() for p in (tmp_path / "https" / "bodies").iterdir())
    assert bodies == sorted({s.body.encode() for s in served if s.body})


def test_nginx_logs_each_request_with_its_connections_start(tmp_path: Path) -> None:
    config = nginx.render_config([], folder=tmp_path, pki_dir=tmp_path)
    assert f"access_log {tmp_path / nginx.REQUEST_LOG} requests;" in config
    assert '"open_s":$connection_time' in config
    assert "escape=json" in config


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], []),
        (
            [
                '{"server":"127.9.0.1","client":"127.0.0.1","end":100.250,"open_s":0.010,'
                '"status":200,"sni":"mta-sts.a.test"}\n',
                '{"server":"127.9.0.1","client":"127.0.0.1","end":101.5,"open_s":0.5,'
                '"status":404,"sni":""}\n',
                '{"server":"127.9.0.1","client":"127.0.0.1","end":10',  # being written
            ],
            [("127.9.0.1", 100.24, 100.25, "mta-sts.a.test"), ("127.9.0.1", 101.0, 101.5, "")],
        ),
    ],
)
def test_request_log_lines_are_connections(
    lines: list[str], expected: list[tuple[str, float, float, str]]
) -> None:
    records = nginx.request_records(lines)
    assert [(r.server, r.start, r.end, r.sni) for r in records] == expected
    assert {r.outcome for r in records} <= {Outcome.TLS}


@pytest.mark.parametrize(
    "line", ["not json\n", '{"server":"127.9.0.1"}\n', '{"end":"x","open_s":1}\n']
)
def test_a_line_that_is_no_request_line_is_an_error(line: str) -> None:
    with pytest.raises(ValueError, match="line 1 is not a request log line"):
        nginx.request_records([line])


def test_an_ipv6_site_has_an_aaaa_on_loopback_and_listens_there(tmp_path: Path) -> None:
    b = Builder(seed=3, net=152, now=NOW)
    domain, zone = b.signed_domain()
    site = b.mta_sts(domain, POLICY, ipv6=True)
    other = b.mta_sts("b.example.", POLICY)
    published = sorted((r.rtype, r.rdata) for r in zone.records if r.owner == f"{site.name}.")
    assert published == [("A", site.address), ("AAAA", "::1")]
    assert site.addresses == (site.address, "::1")
    assert other.addresses == (other.address,) == (site.address,)
    assert nginx.addresses(b.sites()) == [site.address, "::1"]
    text = nginx.render_config(b.sites(), folder=tmp_path, pki_dir=tmp_path / "pki")
    ours, theirs = text.split("server {")[1:]
    assert f"listen {site.address}:443 ssl;" in ours
    assert "listen [::1]:443 ssl;" in ours
    assert "[::1]" not in theirs


@pytest.mark.parametrize("serve", [StsServe.NO_HTTPS, StsServe.NO_ADDRESS], ids=str)
def test_a_site_that_serves_nothing_gets_no_ipv6(serve: StsServe) -> None:
    b = Builder(seed=3, net=152, now=NOW)
    with pytest.raises(ValueError, match="::1"):
        b.mta_sts("a.example.", POLICY, serve, ipv6=True)
    assert b.sites() == []
    assert not [r for r in b.zone_of("a.example.").records if r.owner.startswith("mta-sts.")]


@pytest.mark.parametrize(
    ("args", "ranges", "roots"),
    [
        (["--allow-range", "127.1.0.0/16"], ("127.1.0.0/16",), ()),
        (
            ["--allow-range", "127.1.0.0/16", "--allow-range", "::1/128", "--pkix-ca", "/d/r.pem"],
            ("127.1.0.0/16", "::1/128"),
            (Path("/d/r.pem"),),
        ),
        ([], (), ()),
    ],
)
def test_scan_args_give_allow_ranges_and_pkix_roots(
    args: list[str], ranges: tuple[str, ...], roots: tuple[Path, ...]
) -> None:
    state: dict[str, object] = {"scan_args": args}
    assert allow_ranges(state) == ranges
    assert pkix_ca(state) == roots


@pytest.mark.parametrize(
    "args", [["--exclude", "x"], ["--allow-range"], "--allow-range 127.1.0.0/16", ["--pkix-ca"]]
)
def test_scan_args_with_anything_else_are_refused(args: object) -> None:
    with pytest.raises(ValueError, match="scan_args holds more than"):
        allow_ranges({"scan_args": args})
