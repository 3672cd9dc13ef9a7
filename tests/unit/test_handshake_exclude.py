"""The exclusion list: parsing tables, lookups, and a brute-force oracle."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.handshake.exclude import (
    BadLine,
    Exclusions,
    Ranges,
    parse_exclusions,
)

FILE = """\
# Operators who asked to be left out
192.0.2.0/24          # TEST-NET-1
198.51.100.7
203.0.113.77/30       # host bits set: the whole /30
2001:db8:1::/48
Example.COM.
*.example.net
.example.org
bücher.example
xn--mller-kva.example

not a line
10.0.0.256
10.0.0.0/33
2001:db8::zz
-bad-.example
1.2.3
exa mple.com
"""


def test_parse_reports_bad_lines_with_their_numbers() -> None:
    parsed = parse_exclusions(FILE.splitlines())
    assert [(b.line_no, b.text) for b in parsed.bad_lines] == [
        (12, "not a line"),
        (13, "10.0.0.256"),
        (14, "10.0.0.0/33"),
        (15, "2001:db8::zz"),
        (16, "-bad-.example"),
        (17, "1.2.3"),
        (18, "exa mple.com"),
    ]
    reasons = [b.reason for b in parsed.bad_lines]
    assert reasons[0] == "more than one entry on a line"
    assert reasons[1].startswith("not an address or network")
    assert reasons[4] == "neither an address, a network nor a domain name"
    assert parsed.exclusions.domains == {
        "example.com",
        "example.net",
        "example.org",
        "xn--bcher-kva.example",
        "xn--mller-kva.example",
    }
    assert parsed.exclusions.v4 == Ranges(
        (0xC0000200, 0xC6336407, 0xCB00714C),
        (0xC00002FF, 0xC6336407, 0xCB00714F),
    )
    assert len(parsed.exclusions.v6) == 1


EXCLUSIONS = parse_exclusions(FILE.splitlines()).exclusions


@pytest.mark.parametrize(
    ("address", "names", "excluded"),
    [
        ("192.0.2.0", (), True),
        ("192.0.2.255", (), True),
        ("192.0.3.0", (), False),
        ("192.0.1.255", (), False),
        ("198.51.100.7", (), True),
        ("198.51.100.8", (), False),
        ("203.0.113.76", (), True),
        ("203.0.113.79", (), True),
        ("203.0.113.80", (), False),
        ("2001:db8:1:ffff::1", (), True),
        ("2001:db8:2::1", (), False),
        ("::ffff:192.0.2.9", (), True),  # IPv4-mapped
        ("::ffff:192.0.3.9", (), False),
        (ipaddress.ip_address("192.0.2.1"), (), True),
        ("127.0.0.1", ("mx.example.com",), True),
        ("127.0.0.1", ("MX.Example.Com.",), True),
        ("127.0.0.1", ("example.com",), True),
        ("127.0.0.1", ("notexample.com",), False),
        ("127.0.0.1", ("example.com.evil",), False),
        ("127.0.0.1", ("a.b.example.net",), True),
        ("127.0.0.1", ("example.org",), True),
        ("127.0.0.1", ("mx.xn--bcher-kva.example",), True),
        ("127.0.0.1", ("mx.other.example", "example.org"), True),
        ("127.0.0.1", ("mx.other.example",), False),
        ("127.0.0.1", (), False),
    ],
)
def test_is_excluded(
    address: str | ipaddress.IPv4Address, names: tuple[str, ...], excluded: bool
) -> None:
    assert EXCLUSIONS.is_excluded(address, names) is excluded


def test_an_empty_list_excludes_nothing() -> None:
    empty = Exclusions()
    assert not empty
    assert not empty.is_excluded("192.0.2.1", ("example.com",))
    assert EXCLUSIONS


def test_a_default_route_excludes_everything_of_its_family() -> None:
    everything = parse_exclusions(["0.0.0.0/0"]).exclusions
    assert everything.is_excluded("255.255.255.255")
    assert everything.is_excluded("::ffff:10.0.0.1")
    assert not everything.is_excluded("::1")


def test_a_non_address_string_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        EXCLUSIONS.is_excluded("mx.example.com")


@pytest.mark.parametrize(
    ("ranges", "starts", "ends"),
    [
        ([], (), ()),
        ([(5, 9), (1, 3)], (1, 5), (3, 9)),
        ([(1, 3), (4, 9)], (1,), (9,)),  # adjacent ranges merge
        ([(1, 10), (2, 3)], (1,), (10,)),  # contained
        ([(1, 5), (3, 8), (20, 20)], (1, 20), (8, 20)),
    ],
)
def test_ranges_merge(
    ranges: list[tuple[int, int]], starts: tuple[int, ...], ends: tuple[int, ...]
) -> None:
    assert Ranges.merge(ranges) == Ranges(starts, ends)


def test_bad_line_keeps_the_original_text() -> None:
    parsed = parse_exclusions(["  nope nope  # why\r\n"])
    assert parsed.bad_lines == (BadLine(1, "  nope nope  # why", "more than one entry on a line"),)


networks_v4 = st.builds(
    lambda address, prefix: ipaddress.IPv4Network((address, prefix), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(8, 32),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(networks_v4, max_size=30), st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_lookups_agree_with_brute_force(
    networks: list[ipaddress.IPv4Network], probes: list[int]
) -> None:
    exclusions = Exclusions.build(networks)
    for network in networks:
        probes += [int(network.network_address), int(network.broadcast_address)]
        probes += [int(network.network_address) - 1, int(network.broadcast_address) + 1]
    for value in probes:
        if 0 <= value < 2**32:
            address = ipaddress.IPv4Address(value)
            assert exclusions.is_excluded(address) is any(address in n for n in networks)


def test_a_large_list() -> None:
    lines = [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(0, 65536, 2)]
    lines += [f"host{i}.example" for i in range(50_000)]
    exclusions = parse_exclusions(lines).exclusions
    assert len(exclusions.v4) == 32768
    assert exclusions.is_excluded("10.0.0.1")
    assert not exclusions.is_excluded("10.0.1.1")
    assert exclusions.is_excluded("10.255.254.9")
    assert exclusions.is_excluded("192.0.2.1", ("mx.host49999.example",))
    assert not exclusions.is_excluded("192.0.2.1", ("mx.host50000.example",))
