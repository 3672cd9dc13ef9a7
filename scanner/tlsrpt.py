"""The TLS-RPT record at ``_smtp._tls.<domain>`` (RFC 8460 section 3).

Same input, selection and frame as the ``_mta-sts`` record
(scanner.mtasts.record): character-strings concatenated, records not
beginning with ``v=TLSRPTv1`` discarded, not exactly one left is
``absent`` or ``multiple``, fields after ";" with whitespace around it.

    tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
    tlsrpt-uri = URI        ; RFC 3986; "," and "!" MUST be percent-encoded

rua is required, once. Section 3 names the two schemes reports go to,
``mailto:`` and ``https:``; a URI of another scheme (or none) makes the
record invalid here, since a reporter has nowhere to send to it. The URI
check is light, as a reporter's would be: a supported scheme, something
after it (an address with "@" for mailto, a host after "//" for https),
no whitespace or control characters. Other fields are extensions
(tlsrpt-ext-name "=" tlsrpt-ext-value, the productions of RFC 8461),
checked for syntax and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.mtasts.record import TxtRecordStatus, TxtRRset, parse_tagged

TLSRPT_VERSION = "v=TLSRPTv1"
_URI_CHARS = re.compile(r"[\x21-\x7e]+")
_COMMA = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True, slots=True)
class TlsRptRecord:
    """The ``_smtp._tls`` record: ``rua`` is set only when ``status`` is valid."""

    status: TxtRecordStatus
    rua: tuple[str, ...] = ()
    error: str = ""

    @classmethod
    def failed(cls, error: str) -> TlsRptRecord:
        """A lookup that gave no answer to judge (SERVFAIL, timeout, bogus)."""
        return cls(TxtRecordStatus.LOOKUP_ERROR, error=error)


def uri_error(uri: str) -> str:
    """'' when ``uri`` is a reporting URI of RFC 8460 section 3."""
    if not _URI_CHARS.fullmatch(uri):
        return f"rua URI {uri!r} is empty or holds whitespace"
    scheme, colon, rest = uri.partition(":")
    scheme = scheme.lower()  # RFC 3986 s3.1: schemes are case-insensitive
    if not colon or scheme not in ("mailto", "https"):
        return f"rua URI {uri!r} is neither mailto: nor https:"
    if scheme == "mailto" and "@" not in rest.strip("@"):
        return f"rua URI {uri!r} has no address"
    if scheme == "https" and not (rest.startswith("//") and rest[2:].split("/")[0]):
        return f"rua URI {uri!r} has no host"
    return ""


def parse_tlsrpt_record(rrset: TxtRRset) -> TlsRptRecord:
    """The ``_smtp._tls`` TXT RRset (RFC 8460 section 3) as a reporter reads it."""
    status, rua, error = parse_tagged(rrset, TLSRPT_VERSION, "rua")
    if status is not TxtRecordStatus.VALID:
        return TlsRptRecord(status, error=error)
    uris = tuple(_COMMA.split(rua))
    for uri in uris:
        if error := uri_error(uri):
            return TlsRptRecord(TxtRecordStatus.INVALID, error=error)
    return TlsRptRecord(TxtRecordStatus.VALID, rua=uris)
