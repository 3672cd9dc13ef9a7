"""What an answer to an MTA-STS policy fetch means (RFC 8461 section 3.3).

Pure: the driver (scanner.mtasts.fetch) hands over the status code and
headers, then the bytes it read, and gets a ``FetchResult`` back. Section
3.3's rules, as checked here:

- only a 200 is a policy; a 3xx is a redirect, which "MUST NOT" be followed:
  ``redirect``; a 5xx or a 429 may pass (``http_error``, transient), any
  other status is a fact (``http_error``);
- the media type "MUST be text/plain" (parameters such as ``charset`` are
  allowed, the type is compared without regard to case, RFC 9110 section
  8.3.1): else ``wrong_media_type``;
- "a maximum allowed policy size": 64 KiB, the section's suggestion,
  checked on the Content-Length before any body byte is read and on the bytes
  read (a chunked answer has no length): ``too_large``;
- the body is handed to the policy parser as text: the policy's grammar
  (section 3.2) is ASCII, so it is decoded as UTF-8, its superset, whatever
  charset the header names; bytes that are no UTF-8 at all are a
  ``protocol_error``, not a policy with a syntax error.

Nothing here raises on what a server sends; every outcome is a status and an
error string (bounded and printable, since a server writes part of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Section 3.3: "[...] SHOULD use a maximum allowed policy size (e.g., 64 KiB)".
MAX_POLICY_BYTES = 64 * 1024
# What of a server's words (a Location, a media type) goes into an error string.
_QUOTED_CHARS = 120


class FetchStatus(StrEnum):
    OK = "ok"  # 200, text/plain, within bounds: body handed to the parser
    NOT_FETCHED = "not_fetched"  # no valid record, nothing asked
    NO_ADDRESS = "no_address"  # mta-sts.<domain> has no A/AAAA
    BLOCKED = "blocked"  # excluded by --exclude: no packet sent
    RESERVED = "reserved"  # special-purpose address not allowed: no packet sent
    CONNECT_ERROR = "connect_error"  # refused / unreachable / reset before TLS
    TIMEOUT = "timeout"  # connect, TLS or read over the time bound
    TLS_ERROR = "tls_error"  # handshake failed for another reason
    CERT_INVALID = "cert_invalid"  # not PKIX-valid (untrusted, expired)
    CERT_NAME_MISMATCH = "cert_name_mismatch"  # valid chain, not for mta-sts.<domain>
    REDIRECT = "redirect"  # a 3xx (never followed, s3.3)
    HTTP_ERROR = "http_error"  # any other non-200 status
    WRONG_MEDIA_TYPE = "wrong_media_type"  # Content-Type not text/plain
    TOO_LARGE = "too_large"  # body over the bound (64 KiB)
    PROTOCOL_ERROR = "protocol_error"  # not HTTP, garbage


# Outcomes that may differ if tried again later; HTTP_ERROR only with a
# 5xx or 429 (``transient_http``).
TRANSIENT = frozenset({FetchStatus.CONNECT_ERROR, FetchStatus.TIMEOUT})


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of fetching one domain's policy, as it is recorded."""

    status: FetchStatus
    error: str = ""
    http_status: int | None = None
    body: str | None = None  # the policy text, with OK only
    address: str | None = None  # the address that gave this outcome
    attempts: int = 0  # rounds over the addresses; 0: nothing was sent
    transient: bool = False  # may differ later: not a fact about the domain
    elapsed_ms: int = 0  # time spent in requests, waits between them excluded


def transient_http(code: int) -> bool:
    """A status that says "not now" rather than "no": 5xx, and 429 (RFC 6585 section 4)."""
    return code >= 500 or code == 429


def quoted(text: str) -> str:
    """A server's words made safe for an error string: printable, bounded."""
    cut = text[:_QUOTED_CHARS]
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return repr(shown + ("..." if len(text) > _QUOTED_CHARS else ""))


def media_type(content_type: str | None) -> str | None:
    """The type/subtype of a Content-Type value, lower case, without parameters."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def judge_head(
    code: int,
    content_type: str | None,
    content_length: str | None,
    *,
    location: str | None = None,
    content_encoding: str | None = None,
    limit: int = MAX_POLICY_BYTES,
) -> FetchResult | None:
    """The outcome decided by the status line and headers alone; None when
    the body is to be read (then ``judge_body`` decides)."""
    if 300 <= code < 400:
        where = f" to {quoted(location)}" if location is not None else " without a Location"
        return FetchResult(FetchStatus.REDIRECT, f"HTTP {code}{where}: not followed", code)
    if code != 200:
        transient = transient_http(code)
        return FetchResult(FetchStatus.HTTP_ERROR, f"HTTP {code}", code, transient=transient)
    kind = media_type(content_type)
    if kind != "text/plain":
        found = (
            "no Content-Type" if content_type is None else f"Content-Type {quoted(content_type)}"
        )
        return FetchResult(FetchStatus.WRONG_MEDIA_TYPE, f"{found}, not text/plain", code)
    # The client asks for the identity encoding: a body it cannot count as
    # the policy's own bytes is not an answer to the request.
    if content_encoding is not None and content_encoding.strip().lower() not in ("", "identity"):
        return FetchResult(
            FetchStatus.PROTOCOL_ERROR,
            f"Content-Encoding {quoted(content_encoding)} not asked for",
            code,
        )
    if content_length is not None:
        length = content_length.strip()
        if not length.isascii() or not length.isdigit():
            return FetchResult(
                FetchStatus.PROTOCOL_ERROR, f"Content-Length {quoted(content_length)}", code
            )
        if int(length) > limit:
            return FetchResult(
                FetchStatus.TOO_LARGE, f"Content-Length {int(length)} over {limit} bytes", code
            )
    return None


def judge_body(data: bytes, *, limit: int = MAX_POLICY_BYTES) -> FetchResult:
    """The outcome of a 200 text/plain answer from the bytes read of its
    body: the reader stops after ``limit + 1`` bytes, so more than ``limit``
    means too large, whatever else the server would have sent."""
    if len(data) > limit:
        return FetchResult(FetchStatus.TOO_LARGE, f"body over {limit} bytes", 200)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return FetchResult(
            FetchStatus.PROTOCOL_ERROR, f"body is not UTF-8 text (byte {exc.start})", 200
        )
    return FetchResult(FetchStatus.OK, "", 200, body=text)
