"""The TLSA record: the one type and the one text form the whole scanner uses.

RFC 6698 section 2.1 defines the record: certificate usage, selector,
matching type (one octet each) and the certificate association data; section
2.2 its presentation format, "U S M HEX". The resolve stage decodes records
into :class:`TlsaRecord` (scanner.resolve.wire), the matcher matches them
(scanner.match) and the output writes the matched one with
:meth:`TlsaRecord.to_text`. Which records are *usable* is the matcher's
business (scanner.match.records), not this module's: here any 0-255 value is
a record.

The type is a NamedTuple: the resolve stage builds one per record it decodes
and the matcher hashes whole RRsets to find its prepared plan, and a tuple's
constructor, hash and equality are the cheapest Python has. Like any tuple it
equals a plain tuple of the same four values.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DIGEST_SIZES",
    "MTYPE_NAMES",
    "SELECTOR_NAMES",
    "USAGE_NAMES",
    "TlsaRecord",
    "TlsaSyntaxError",
    "parse_tlsa",
]

# RFC 6698 section 7.2-7.4 (the IANA registries), named as RFC 7218 does.
USAGE_NAMES = {0: "PKIX-TA(0)", 1: "PKIX-EE(1)", 2: "DANE-TA(2)", 3: "DANE-EE(3)"}
SELECTOR_NAMES = {0: "Cert(0)", 1: "SPKI(1)"}
MTYPE_NAMES = {0: "Full(0)", 1: "SHA2-256(1)", 2: "SHA2-512(2)"}
DIGEST_SIZES = {1: 32, 2: 64}


class TlsaRecord(NamedTuple):
    """One TLSA record (RFC 6698 section 2.1): usage, selector, matching type, data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def to_text(self) -> str:
        """Presentation form (section 2.2), "U S M HEX" with upper-case hex as dig prints it.

        The form of the ``matched`` column of the datasets.
        """
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex().upper()}"

    def label(self) -> str:
        """A short human description, e.g. "DANE-EE(3) SPKI(1) SHA2-256(1) 3111..."."""
        usage = USAGE_NAMES.get(self.usage, f"usage {self.usage}")
        selector = SELECTOR_NAMES.get(self.selector, f"selector {self.selector}")
        mtype = MTYPE_NAMES.get(self.mtype, f"mtype {self.mtype}")
        return f"{usage} {selector} {mtype} {self.data[:4].hex().upper()}..."


@dataclass(frozen=True, slots=True)
class TlsaSyntaxError:
    """Why a presentation-format TLSA record could not be read."""

    text: str
    message: str

    def __str__(self) -> str:
        return f"{self.message}: {self.text!r}"


_HEX = frozenset(string.hexdigits)


def parse_tlsa(text: str) -> TlsaRecord | TlsaSyntaxError:
    """Read "U S M HEX" (the hex may contain whitespace, as in zone files).

    Only syntax is checked here: any 0-255 value parses, because a record with
    an unknown usage is a valid record that is merely unusable
    (``scanner.match.records.record_problem`` says why).
    """
    fields = text.split()
    if len(fields) < 4:
        return TlsaSyntaxError(text, "expected 'usage selector mtype hex-data'")
    numbers = []
    for name, field in zip(("usage", "selector", "matching type"), fields[:3], strict=True):
        if not field.isdigit() or not field.isascii() or int(field) > 255:
            return TlsaSyntaxError(text, f"{name} must be an integer 0-255, got {field!r}")
        numbers.append(int(field))
    hexdata = "".join(fields[3:])
    if not set(hexdata) <= _HEX:
        return TlsaSyntaxError(text, "data is not hexadecimal")
    if len(hexdata) % 2:
        return TlsaSyntaxError(text, "data has an odd number of hex digits")
    return TlsaRecord(numbers[0], numbers[1], numbers[2], bytes.fromhex(hexdata))
