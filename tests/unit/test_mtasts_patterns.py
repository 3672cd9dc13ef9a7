"""MX patterns of an MTA-STS policy (RFC 8461 section 4.1)."""

from __future__ import annotations

import pytest

from scanner.mtasts.patterns import allowed, allowed_hosts, host_status, matches
from scanner.mtasts.policy import StsHostStatus


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        # s4.1's example: the wildcard is one leftmost label
        ("*.example.com", "mail.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "foo.mail.example.com", False),
        # s3.2's example policy
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "mx.mail.example.com", False),
        ("mail.example.com", "example.com", False),
        ("*.example.net", "mx1.example.net", True),
        ("*.example.net", "mx1.example.com", False),
        # case and trailing dots do not count
        ("MAIL.Example.COM", "mail.example.com.", True),
        ("*.EXAMPLE.com", "MX.example.COM.", True),
        ("mail.example.com.", "mail.example.com", True),
        # the wildcard is a whole label, never part of one
        ("*.example.com", ".example.com", False),
        ("*.example.com", "mailexample.com", False),
        ("*.example.com", "*.example.com", True),  # a literal "*" label is still one label
        ("mail.example.com", "", False),
        ("", "", False),
    ],
)
def test_matches(pattern: str, host: str, expected: bool) -> None:
    assert matches(pattern, host) is expected


def test_allowed_hosts() -> None:
    patterns = ("mail.example.com", "*.example.net", "backupmx.example.com")
    hosts = ("mail.example.com.", "mx9.example.net.", "evil.example.org.", "a.b.example.net.")
    assert allowed_hosts(patterns, hosts) == ("mail.example.com.", "mx9.example.net.")
    assert allowed(patterns, "BACKUPMX.example.com.")
    assert not allowed((), "mail.example.com")
    assert allowed_hosts((), hosts) == ()


@pytest.mark.parametrize(
    ("host", "chain", "expected"),
    [
        ("mx.example.net.", StsHostStatus.VALID, StsHostStatus.VALID),
        ("mx.example.net.", StsHostStatus.EXPIRED, StsHostStatus.EXPIRED),
        ("mx.example.net.", StsHostStatus.NO_TLS, StsHostStatus.NO_TLS),
        ("mx.example.org.", StsHostStatus.VALID, StsHostStatus.NOT_ALLOWED),
        ("mx.example.org.", StsHostStatus.UNTRUSTED, StsHostStatus.NOT_ALLOWED),
    ],
)
def test_host_status(host: str, chain: StsHostStatus, expected: StsHostStatus) -> None:
    assert host_status(("*.example.net",), host, chain) is expected
