"""What an answer to an MTA-STS policy fetch means (RFC 8461 section 3.3), as tables."""

from __future__ import annotations

import pytest

from scanner.mtasts.response import (
    MAX_POLICY_BYTES,
    FetchResult,
    FetchStatus,
    judge_body,
    judge_head,
    media_type,
    quoted,
    transient_http,
)

S = FetchStatus
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n"

# (code, Content-Type, Content-Length, Location, Content-Encoding) ->
# (status or None to read the body, transient, words the error must hold)
HEADS = [
    (200, "text/plain", None, None, None, None, False, ""),
    (200, "text/plain", "70", None, None, None, False, ""),
    (200, "text/plain; charset=utf-8", "70", None, None, None, False, ""),
    (200, "Text/Plain ;charset=US-ASCII", None, None, None, None, False, ""),
    (200, " text/plain", None, None, None, None, False, ""),
    (200, "text/plain", str(MAX_POLICY_BYTES), None, None, None, False, ""),
    (200, "text/plain", None, None, "identity", None, False, ""),
    # Section 3.3: 200 only; redirects never followed.
    (301, "text/plain", None, "https://elsewhere.example/", None, S.REDIRECT, False, "elsewhere"),
    (302, None, None, None, None, S.REDIRECT, False, "without a Location"),
    (307, "text/html", "0", "/x", None, S.REDIRECT, False, "not followed"),
    (308, "text/plain", None, "https://a/", None, S.REDIRECT, False, "HTTP 308"),
    (304, "text/plain", None, None, None, S.REDIRECT, False, "HTTP 304"),
    (404, "text/html", "153", None, None, S.HTTP_ERROR, False, "HTTP 404"),
    (403, "text/plain", None, None, None, S.HTTP_ERROR, False, "HTTP 403"),
    (204, "text/plain", "0", None, None, S.HTTP_ERROR, False, "HTTP 204"),
    (206, "text/plain", "10", None, None, S.HTTP_ERROR, False, "HTTP 206"),
    (101, None, None, None, None, S.HTTP_ERROR, False, "HTTP 101"),
    # "Not now" rather than "no": tried again.
    (500, "text/plain", None, None, None, S.HTTP_ERROR, True, "HTTP 500"),
    (503, "text/html", None, None, None, S.HTTP_ERROR, True, "HTTP 503"),
    (599, None, None, None, None, S.HTTP_ERROR, True, "HTTP 599"),
    (429, "text/plain", None, None, None, S.HTTP_ERROR, True, "HTTP 429"),
    # The media type, with or without parameters.
    (200, "text/html", "70", None, None, S.WRONG_MEDIA_TYPE, False, "'text/html'"),
    (200, "application/octet-stream", None, None, None, S.WRONG_MEDIA_TYPE, False, "octet"),
    (200, None, "70", None, None, S.WRONG_MEDIA_TYPE, False, "no Content-Type"),
    (200, "", None, None, None, S.WRONG_MEDIA_TYPE, False, "not text/plain"),
    (200, "text/plainx", None, None, None, S.WRONG_MEDIA_TYPE, False, "text/plainx"),
    (200, "text/plain/x", None, None, None, S.WRONG_MEDIA_TYPE, False, "text/plain/x"),
    (200, "plain/text; charset=utf-8", None, None, None, S.WRONG_MEDIA_TYPE, False, "plain/text"),
    # The bound, known before any body byte.
    (200, "text/plain", str(MAX_POLICY_BYTES + 1), None, None, S.TOO_LARGE, False, "65537"),
    (200, "text/plain", "99999999999999999999", None, None, S.TOO_LARGE, False, "over 65536"),
    # Headers that are not HTTP the client asked for.
    (200, "text/plain", "-1", None, None, S.PROTOCOL_ERROR, False, "'-1'"),
    (200, "text/plain", "12a", None, None, S.PROTOCOL_ERROR, False, "Content-Length"),
    (200, "text/plain", "\u0661\u0662", None, None, S.PROTOCOL_ERROR, False, "Content-Length"),
    (200, "text/plain", None, None, "gzip", S.PROTOCOL_ERROR, False, "'gzip' not asked for"),
    (200, "text/plain", "70", None, "br", S.PROTOCOL_ERROR, False, "Content-Encoding"),
]


@pytest.mark.parametrize(
    ("code", "ctype", "length", "location", "encoding", "status", "transient", "words"), HEADS
)
def test_the_head_decides_or_asks_for_the_body(
    code: int,
    ctype: str | None,
    length: str | None,
    location: str | None,
    encoding: str | None,
    status: FetchStatus | None,
    transient: bool,
    words: str,
) -> None:
    result = judge_head(code, ctype, length, location=location, content_encoding=encoding)
    if status is None:
        assert result is None
        return
    assert result is not None
    assert (result.status, result.transient, result.http_status) == (status, transient, code)
    assert words in result.error
    assert result.body is None


BODIES = [
    (POLICY, S.OK, POLICY.decode(), ""),
    (b"", S.OK, "", ""),
    (b"x" * MAX_POLICY_BYTES, S.OK, "x" * MAX_POLICY_BYTES, ""),
    # The parser judges the policy's syntax; UTF-8 text reaches it whole.
    ("mx: \u00e9xample.com\n".encode(), S.OK, "mx: \u00e9xample.com\n", ""),
    (b"\xef\xbb\xbfversion: STSv1\n", S.OK, "\ufeffversion: STSv1\n", ""),
    (b"x" * (MAX_POLICY_BYTES + 1), S.TOO_LARGE, None, "over 65536 bytes"),
    (b"version: STSv1\n\xff\xfe", S.PROTOCOL_ERROR, None, "not UTF-8 text (byte 15)"),
    (b"\xe9t\xe9", S.PROTOCOL_ERROR, None, "byte 0"),
]


@pytest.mark.parametrize(("data", "status", "body", "words"), BODIES)
def test_the_body_is_handed_over_as_text(
    data: bytes, status: FetchStatus, body: str | None, words: str
) -> None:
    result = judge_body(data)
    assert (result.status, result.body, result.http_status) == (status, body, 200)
    assert words in result.error
    assert not result.transient


def test_the_bound_is_the_callers() -> None:
    assert judge_body(b"x" * 11, limit=10).status is S.TOO_LARGE
    assert judge_body(b"x" * 10, limit=10).status is S.OK
    head = judge_head(200, "text/plain", "11", limit=10)
    assert head is not None
    assert head.status is S.TOO_LARGE


@pytest.mark.parametrize(
    ("code", "transient"),
    [(200, False), (404, False), (410, False), (428, False), (429, True), (430, False),
     (499, False), (500, True), (502, True), (504, True)],
)  # fmt: skip
def test_transient_http(code: int, transient: bool) -> None:
    assert transient_http(code) is transient


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://a.example/", "'https://a.example/'"),
        ("a\r\nb\x00", "'a\\\\x0d\\\\x0ab\\\\x00'"),
        ("x" * 200, repr("x" * 120 + "...")),
    ],
)
def test_a_servers_words_are_printable_and_bounded(text: str, shown: str) -> None:
    assert quoted(text) == shown


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, None), ("TEXT/PLAIN", "text/plain"), ("text/plain;charset=x", "text/plain"),
     (" text/html ; q=1", "text/html"), ("", "")],
)  # fmt: skip
def test_media_type(value: str | None, kind: str | None) -> None:
    assert media_type(value) == kind


def test_the_statuses_are_the_shared_vocabulary() -> None:
    # The dataset stores these strings (/work/wt/ISSUE19.md): renaming one is a schema change.
    assert [s.value for s in FetchStatus] == [
        "ok", "not_fetched", "no_address", "blocked", "reserved", "connect_error", "timeout",
        "tls_error", "cert_invalid", "cert_name_mismatch", "redirect", "http_error",
        "wrong_media_type", "too_large", "protocol_error",
    ]  # fmt: skip
    assert FetchResult(S.NOT_FETCHED).attempts == 0
