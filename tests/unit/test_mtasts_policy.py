"""The MTA-STS policy file (RFC 8461 section 3.2): RFC examples and tables of
malformed policies."""

from __future__ import annotations

import pytest

from scanner.mtasts.policy import StsHostStatus, StsMode, StsPolicy, parse_policy

# RFC 8461 s3.2's example, with CRLF as the text shows on its first line
EXAMPLE = (
    b"version: STSv1\r\n"
    b"mode: enforce\r\n"
    b"mx: mail.example.com\r\n"
    b"mx: *.example.net\r\n"
    b"mx: backupmx.example.com\r\n"
    b"max_age: 604800\r\n"
)
EXAMPLE_MX = ("mail.example.com", "*.example.net", "backupmx.example.com")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (EXAMPLE, StsPolicy(True, StsMode.ENFORCE, 604800, EXAMPLE_MX)),
        (EXAMPLE.replace(b"\r\n", b"\n"), StsPolicy(True, StsMode.ENFORCE, 604800, EXAMPLE_MX)),
        (EXAMPLE.rstrip(b"\r\n"), StsPolicy(True, StsMode.ENFORCE, 604800, EXAMPLE_MX)),
        # mixed terminators, fields in any order
        (
            b"max_age: 86400\nmx: mx.example.com\r\nmode: testing\nversion: STSv1",
            StsPolicy(True, StsMode.TESTING, 86400, ("mx.example.com",)),
        ),
        # mode none needs no mx
        (b"version: STSv1\nmode: none\nmax_age: 0\n", StsPolicy(True, StsMode.NONE, 0, ())),
        (
            b"version: STSv1\nmode: none\nmax_age: 31557600\nmx: a.example\n",
            StsPolicy(True, StsMode.NONE, 31557600, ("a.example",)),
        ),
        # whitespace after ':' and at the end of a line; no space after ':'
        (
            b"version:STSv1\nmode:\tenforce \t\nmax_age:  0000000060\nmx: MX.Example.COM  \n",
            StsPolicy(True, StsMode.ENFORCE, 60, ("MX.Example.COM",)),
        ),
        # extensions: ignored, repeatable, any vchar including UTF-8 and inner spaces
        (
            b"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.example\n"
            b"x-note: say \xc3\xa9 = ; here\nx-note: again\nVersion: STSv2\n",
            StsPolicy(True, StsMode.ENFORCE, 1, ("a.example",)),
        ),
        # tolerated: empty lines
        (
            b"\nversion: STSv1\r\n\r\nmode: none\nmax_age: 5\n\n\n",
            StsPolicy(True, StsMode.NONE, 5, ()),
        ),
    ],
)
def test_valid_policies(body: bytes, expected: StsPolicy) -> None:
    assert parse_policy(body) == expected


GOOD = {"version": "STSv1", "mode": "enforce", "max_age": "86400", "mx": "mx.example.com"}


def policy(**fields: str) -> bytes:
    """GOOD with fields replaced; an empty string drops the field."""
    merged = {**GOOD, **fields}
    return "".join(f"{k}: {v}\n" for k, v in merged.items() if v).encode()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "no version field"),
        (policy(version=""), "no version field"),
        (policy(mode=""), "no mode field"),
        (policy(max_age=""), "no max_age field"),
        (policy(mx=""), "no mx field under mode enforce"),
        (policy(mx="", mode="testing"), "no mx field under mode testing"),
        (policy(version="STSv2"), "version 'STSv2' is not STSv1"),
        (policy(version="stsv1"), "version 'stsv1' is not STSv1"),
        (policy(mode="Enforce"), "mode 'Enforce' is not enforce"),
        (policy(mode="report"), "mode 'report' is not enforce"),
        (policy(max_age="31557601"), "max_age 31557601 is over 31557600"),
        (policy(max_age="-1"), "max_age '-1' is not 1-10 digits"),
        (policy(max_age="1.5"), "max_age '1.5' is not 1-10 digits"),
        (policy(max_age="00000000001"), "is not 1-10 digits"),
        (policy(max_age="\u0661"), "is not 1-10 digits"),  # a digit, not an ASCII one
        (policy(mx="*.*.example.com"), "line 4: mx '*.*.example.com' is not"),
        (policy(mx="mail.*.example.com"), "is not a host name"),
        (policy(mx="*example.com"), "is not a host name"),
        (policy(mx="mail.example.com."), "is not a host name"),
        (policy(mx="-mail.example.com"), "is not a host name"),
        (policy(mx="mail..example.com"), "is not a host name"),
        (policy(mx="mail example.com"), "is not a host name"),
        (policy(mx="192.0.2.1:25"), "is not a host name"),
        (policy(mode="enforce\nmode: testing"), "line 3: mode given more than once"),
        (policy(version="STSv1\nversion: STSv1"), "version given more than once"),
        (policy(max_age="1\nmax_age: 1"), "max_age given more than once"),
        (policy(mode="enforce\tnow"), "line 2: malformed value of 'mode'"),
        (b"version STSv1\n", "line 1: not a 'key: value' field"),
        (b"version : STSv1\n", "line 1: not a 'key: value' field"),
        (b" version: STSv1\n", "line 1: not a 'key: value' field"),
        (b"version: STSv1\nMode= enforce\n", "line 2: not a 'key: value' field"),
        (b"version: STSv1\n_x: 1\n", "line 2: not a 'key: value' field"),
        (b"version: STSv1\nx:\n", "line 2: malformed value of 'x'"),
        (b"version: STSv1\nx: a\x00b\n", "line 2: malformed value of 'x'"),
        (b"version: STSv1\nmode: enforce\xff\n", "not UTF-8 at byte 28"),
        (b"<html><body>Not found</body></html>", "line 1: not a 'key: value' field"),
    ],
)
def test_malformed_policies(body: bytes, error: str) -> None:
    result = parse_policy(body)
    assert result == StsPolicy(False, error=result.error)
    assert error in result.error


def test_statuses_are_the_vocabulary() -> None:
    assert [m.value for m in StsMode] == ["enforce", "testing", "none"]
    assert [s.value for s in StsHostStatus] == [
        "valid",
        "not_allowed",
        "untrusted",
        "expired",
        "name_mismatch",
        "no_tls",
    ]
