"""The MTA-STS policy file (RFC 8461 section 3.2) and the per-host statuses
a policy gives (section 4).

Input is the body of a fetch that section 3.3 accepted (200, text/plain,
within the size bound; scanner.mtasts.response decides that). The body is
UTF-8 (sts-policy-vchar allows UTF8-2..4), lines end in LF or CRLF, each
line is one ``key: value`` field:

    sts-policy-field-delim   = ":" *WSP
    sts-policy-version-value = %s"STSv1"
    sts-policy-mode-value    = %s"testing" / %s"enforce" / %s"none"
    sts-policy-mx-value      = ["*."] Domain          ; RFC 5321 Domain
    sts-policy-max-age-value = 1*10(DIGIT)            ; and <= 31557600 (s3.2 text)
    sts-policy-ext-name      = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    sts-policy-ext-value     = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]

Keys are case-sensitive (RFC 7405 %s). version, mode and max_age are
required once (the ABNF's comments); a second one is an error, since a
sender could not know which the publisher meant. mx is required at least
once unless the mode is none. Other keys are extensions: checked for
syntax, then ignored (s3.2: unknown fields are ignored), repeats allowed.
One leniency, stated here: empty lines (a blank line at the end is
common) are skipped, as senders do, instead of failing the policy; the
ABNF allows only one line terminator at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_AGE_LIMIT = 31_557_600  # s3.2: max_age MUST be <= this (one year)
_WSP = " \t"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
# sts-policy-vchar: visible ASCII or any non-ASCII character of valid UTF-8
_EXT_VALUE = re.compile(
    r"[\x21-\x7e\x80-\U0010ffff](?:[\x20-\x7e\x80-\U0010ffff]*[\x21-\x7e\x80-\U0010ffff])?"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_MX = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_REQUIRED_ONCE = ("version", "mode", "max_age")


class StsMode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class StsHostStatus(StrEnum):
    """One MX host under a policy (RFC 8461 section 4)."""

    VALID = "valid"  # matches a pattern, chain PKIX-valid for the host name
    NOT_ALLOWED = "not_allowed"  # no mx pattern matches (s4.1)
    UNTRUSTED = "untrusted"  # chain does not build to a trusted root
    EXPIRED = "expired"  # a certificate outside its validity at `now`
    NAME_MISMATCH = "name_mismatch"  # leaf not valid for the MX host name (RFC 6125 rules of s4.2)
    NO_TLS = "no_tls"  # no chain captured (no STARTTLS, refused, ...)


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A parsed policy: ``ok`` with mode, max_age and the mx patterns as
    written, or not ``ok`` with ``error`` (and nothing else set)."""

    ok: bool
    mode: StsMode | None = None
    max_age: int | None = None
    mx: tuple[str, ...] = ()
    error: str = ""


def _bad(error: str) -> StsPolicy:
    return StsPolicy(False, error=error)


def parse_policy(body: bytes) -> StsPolicy:
    """The policy a sender would apply, or why it would apply none (s3.2)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(f"not UTF-8 at byte {exc.start}")
    seen: dict[str, str] = {}
    mx: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line:
            continue
        key, colon, rest = line.partition(":")
        if not colon or not _NAME.fullmatch(key):
            return _bad(f"line {number}: not a 'key: value' field")
        value = rest.strip(_WSP)
        if not _EXT_VALUE.fullmatch(value):
            return _bad(f"line {number}: malformed value of {key!r}")
        if key == "mx":
            if not _MX.fullmatch(value):
                return _bad(f"line {number}: mx {value!r} is not a host name or '*.' pattern")
            mx.append(value)
        elif key in _REQUIRED_ONCE:
            if key in seen:
                return _bad(f"line {number}: {key} given more than once")
            seen[key] = value
    return _check(seen, tuple(mx))


def _check(seen: dict[str, str], mx: tuple[str, ...]) -> StsPolicy:
    for key in _REQUIRED_ONCE:
        if key not in seen:
            return _bad(f"no {key} field")
    if seen["version"] != "STSv1":
        return _bad(f"version {seen['version']!r} is not STSv1")
    try:
        mode = StsMode(seen["mode"])
    except ValueError:
        return _bad(f"mode {seen['mode']!r} is not enforce, testing or none")
    max_age = seen["max_age"]
    if not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        return _bad(f"max_age {max_age!r} is not 1-10 digits")
    if int(max_age) > MAX_AGE_LIMIT:
        return _bad(f"max_age {max_age} is over {MAX_AGE_LIMIT}")
    if not mx and mode is not StsMode.NONE:
        return _bad(f"no mx field under mode {mode.value}")
    return StsPolicy(True, mode, int(max_age), mx)
