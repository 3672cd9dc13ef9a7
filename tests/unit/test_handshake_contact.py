"""Whom a scan may contact: special-purpose ranges (RFC 6890), the exclusion
list and allowed ranges, as tables, plus brute-force and stdlib oracles."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.config import ScanConfig
from scanner.handshake.contact import (
    ContactPolicy,
    ContactPolicyError,
    contact_policy,
    parse_allow_range,
)
from scanner.handshake.exclude import parse_exclusions
from scanner.handshake.special import SPECIAL_PURPOSE, special_purpose
from scanner.status import SmtpStatus


@pytest.mark.parametrize(
    ("address", "block"),
    [
        # IPv4
        ("0.0.0.0", "this host on this network"),
        ("0.1.2.3", "this network"),
        ("10.0.0.1", "private use"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("100.127.255.255", "shared address space (carrier-grade NAT)"),
        ("100.128.0.0", None),
        ("127.0.0.1", "loopback"),
        ("127.10.3.4", "loopback"),
        ("169.254.169.254", "link local"),  # the cloud metadata service
        ("172.15.255.255", None),
        ("172.16.0.1", "private use"),
        ("172.31.255.255", "private use"),
        ("172.32.0.0", None),
        ("192.0.0.8", "IPv4 dummy address"),
        ("192.0.0.9", "IETF protocol assignments"),  # PCP anycast: no mail server
        ("192.0.0.171", "NAT64/DNS64 discovery"),
        ("192.0.2.1", "documentation (TEST-NET-1)"),
        ("192.88.99.1", "deprecated 6to4 relay anycast"),
        ("192.168.1.1", "private use"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.20.0.0", None),
        ("198.51.100.1", "documentation (TEST-NET-2)"),
        ("203.0.113.1", "documentation (TEST-NET-3)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.255", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "limited broadcast"),
        ("1.1.1.1", None),
        ("192.0.3.1", None),
        ("192.31.196.1", None),  # AS112: globally reachable
        ("223.255.255.255", None),
        # IPv6
        ("::", "unspecified address"),
        ("::1", "loopback address"),
        ("::2", None),
        ("::ffff:8.8.8.8", "IPv4-mapped address"),
        ("::ffff:127.0.0.1", "IPv4-mapped address"),
        ("64:ff9b::808:808", None),  # NAT64 well-known prefix: globally reachable
        ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
        ("100::1", "discard-only address block"),
        ("2001::1", "IETF protocol assignments"),
        ("2001:2::1", "benchmarking"),
        ("2001:1ff:ffff::1", "IETF protocol assignments"),
        ("2001:200::1", None),
        ("2001:db8::25", "documentation"),
        ("3fff::1", "documentation"),
        ("5f00::1", "segment routing SIDs"),
        ("fc00::1", "unique local"),
        ("fdff:ffff::1", "unique local"),
        ("fe80::1", "link-local unicast"),
        ("febf::1", "link-local unicast"),
        ("fec0::1", None),
        ("ff02::1", "multicast"),
        ("2a00:1450:4001::1b", None),
        ("2002:c000:201::1", None),  # 6to4: not in the registry as unreachable
    ],
)
def test_special_purpose(address: str, block: str | None) -> None:
    found = special_purpose(ipaddress.ip_address(address))
    assert (found.name if found else None) == block


def test_every_block_cites_its_rfc_and_is_found_at_both_ends() -> None:
    for entry in SPECIAL_PURPOSE:
        assert entry.reference.startswith("RFC ")
        for end in (entry.network.network_address, entry.network.broadcast_address):
            found = special_purpose(end)
            assert found is not None
            assert found.network.subnet_of(entry.network)


def _near_blocks() -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses at and around the edges of every block, and anywhere."""
    edges = [
        int(address) + delta
        for entry in SPECIAL_PURPOSE
        for address in (entry.network.network_address, entry.network.broadcast_address)
        for delta in (-1, 0, 1)
    ]
    v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
    v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
    edge = st.sampled_from(
        [
            ipaddress.ip_address(value) if value < 2**32 else ipaddress.IPv6Address(value)
            for value in edges
            if 0 <= value < 2**128
        ]
    )
    return st.one_of(edge, v4, v6)


@given(_near_blocks())
def test_the_fast_lookup_agrees_with_the_table(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    in_table = any(address in entry.network for entry in SPECIAL_PURPOSE)
    assert (special_purpose(address) is not None) is in_table


@given(_near_blocks())
def test_what_python_calls_not_global_is_special(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    # The stdlib's table is an older cut of the same registries: a subset
    # of ours (which adds multicast and a few newer blocks).
    if not address.is_global:
        assert special_purpose(address) is not None


ALLOW_TESTBED = ContactPolicy.build(allow=("127.10.0.0/16", "::1/128"))
EXCLUDE = parse_exclusions(["127.10.0.25", "optout.example", "192.0.2.0/24"]).exclusions
BOTH = ContactPolicy.build(EXCLUDE, ("127.10.0.0/16", "::1/128"))
BLOCKED, RESERVED = SmtpStatus.BLOCKED, SmtpStatus.RESERVED


@pytest.mark.parametrize(
    ("policy", "address", "names", "status"),
    [
        (ContactPolicy(), "192.0.3.1", (), None),
        (ContactPolicy(), "127.0.0.1", (), RESERVED),
        (ContactPolicy(), "::1", (), RESERVED),
        (ContactPolicy(), "10.0.0.1", ("mx.example",), RESERVED),
        (ALLOW_TESTBED, "127.10.0.1", (), None),
        (ALLOW_TESTBED, "127.10.255.25", (), None),
        (ALLOW_TESTBED, "127.11.0.1", (), RESERVED),  # another testbed's net
        (ALLOW_TESTBED, "127.0.0.1", (), RESERVED),
        (ALLOW_TESTBED, "::1", (), None),
        (ALLOW_TESTBED, "::ffff:127.10.0.1", (), None),  # the same IPv4 connection
        (ALLOW_TESTBED, "::ffff:127.11.0.1", (), RESERVED),
        (ALLOW_TESTBED, "192.0.3.1", (), None),
        # An exclusion wins over an allowed range, and names count.
        (BOTH, "127.10.0.25", (), BLOCKED),
        (BOTH, "::ffff:127.10.0.25", (), BLOCKED),
        (BOTH, "127.10.0.26", (), None),
        (BOTH, "127.10.0.26", ("mx.optout.example",), BLOCKED),
        (BOTH, "192.0.2.1", (), BLOCKED),  # excluded and reserved: excluded
        (BOTH, "198.51.100.1", (), RESERVED),
    ],
)
def test_refusal(
    policy: ContactPolicy, address: str, names: tuple[str, ...], status: SmtpStatus | None
) -> None:
    refusal = policy.refusal(ipaddress.ip_address(address), names)
    assert (refusal.status if refusal else None) == status


def test_a_reserved_refusal_says_what_and_how_to_allow_it() -> None:
    refusal = ContactPolicy().refusal(ipaddress.ip_address("169.254.169.254"))
    assert refusal is not None
    assert refusal.reason == (
        "special-purpose address (link local, 169.254.0.0/16, RFC 3927):"
        " not contacted unless --allow-range allows it"
    )


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("127.10.0.0/16", "127.10.0.0/16"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("::1", "::1/128"),
        ("127.0.0.1", "127.0.0.1/32"),
        ("fd00::/8", "fd00::/8"),
    ],
)
def test_parse_allow_range(text: str, network: str) -> None:
    assert parse_allow_range(text) == ipaddress.ip_network(network)


@pytest.mark.parametrize("text", ["10.1.2.3/8", "127.10.0.0/33", "localhost", "", "fd00::1/8"])
def test_parse_allow_range_refuses_what_it_would_widen_or_not_understand(text: str) -> None:
    with pytest.raises(ValueError, match="--allow-range"):
        parse_allow_range(text)


def _config(tmp_path: Path, **fields: object) -> ScanConfig:
    return ScanConfig(input="-", output=tmp_path, ehlo_name="scanner.example.net", **fields)  # type: ignore[arg-type]


def test_the_config_validates_its_allowed_ranges(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--allow-range '127\.10\.0\.1/16'"):
        _config(tmp_path, allow_ranges=("127.10.0.1/16",))


def test_contact_policy_from_the_config(tmp_path: Path) -> None:
    exclude = tmp_path / "optout.txt"
    exclude.write_text("# opted out\n127.10.0.25\noptout.example\n")
    config = _config(tmp_path, exclude=exclude, allow_ranges=("127.10.0.0/16",))
    policy = contact_policy(config)
    assert policy.refusal(ipaddress.ip_address("127.10.0.1")) is None
    refused = policy.refusal(ipaddress.ip_address("127.10.0.25"))
    assert refused is not None
    assert refused.status is BLOCKED
    assert contact_policy(_config(tmp_path)) == ContactPolicy()


def test_contact_policy_refuses_a_bad_or_missing_exclusion_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("192.0.2.0/24\nnot an entry\n10.0.0.256\n")
    with pytest.raises(ContactPolicyError, match=r"bad.txt:2: .* \(2 bad lines in all\)"):
        contact_policy(_config(tmp_path, exclude=bad))
    with pytest.raises(ContactPolicyError, match="cannot read --exclude"):
        contact_policy(_config(tmp_path, exclude=tmp_path / "missing.txt"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"192.0.2.1\n# Opt-out f\xfcr example.org\n")
    with pytest.raises(ContactPolicyError, match=r"latin1.txt is not UTF-8 text \(byte 21: 0xfc\)"):
        contact_policy(_config(tmp_path, exclude=latin1))
