"""The ``_mta-sts`` TXT record (RFC 8461 section 3.1), and the tag-value
syntax it shares with TLS-RPT's ``_smtp._tls`` record (RFC 8460 section 3).

Input is the TXT RRset as the resolver returned it: one entry per record,
each entry the record's character-strings (RFC 1035 section 3.3.14) as
bytes. This module concatenates them without adding spaces, as section 3.1
requires, so the DNS codec hands over what the wire holds and nothing
more. A lookup that failed (SERVFAIL, timeout, bogus) never reaches the
parser: the caller records it with ``StsRecord.failed``; NXDOMAIN and
NODATA are an empty RRset, hence ``absent``.

Selection (section 3.1): records that do not begin with the version are
discarded. "Begin with" is read as the version followed by the end of the
record, ";" or whitespace, so ``v=STSv10`` (another version) is discarded
while ``v=STSv1`` alone is kept and reported invalid (no id): the text
says "v=STSv1;" but its own ABNF allows whitespace before the ";"
(erratum 6285), and a record that names the version is the publisher's
attempt at one. Not exactly one record left: ``absent`` or ``multiple``.

Syntax (the ABNF of section 3.1, RFC 7405 case-sensitive literals)::

    sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
    sts-field-delim = *WSP ";" *WSP
    sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
    sts-extension   = sts-ext-name "=" sts-ext-value
    sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)

Read strictly: whitespace is allowed only around a ";", so whitespace after
the last field needs a ";" after it; an empty field (";;") is an error;
"id" is required and may appear once (two ids name no one policy); any
other well-formed field is an extension and ignored. The record must be
US-ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class TxtRecordStatus(StrEnum):
    """A ``_mta-sts`` or ``_smtp._tls`` TXT lookup."""

    ABSENT = "absent"  # NXDOMAIN / NODATA / no record with the version prefix
    VALID = "valid"
    INVALID = "invalid"  # one record with the prefix, bad syntax
    MULTIPLE = "multiple"  # more than one record with the prefix (RFC 8461 s3.1, RFC 8460 s3)
    LOOKUP_ERROR = "lookup_error"  # SERVFAIL/timeout/bogus: not a fact, transient


TxtRRset = Sequence[Sequence[bytes]]  # records, each its character-strings

STS_VERSION = "v=STSv1"
_WSP = " \t"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class StsRecord:
    """The ``_mta-sts`` record: ``id`` is set only when ``status`` is valid."""

    status: TxtRecordStatus
    id: str = ""
    error: str = ""

    @classmethod
    def failed(cls, error: str) -> StsRecord:
        """A lookup that gave no answer to judge (SERVFAIL, timeout, bogus)."""
        return cls(TxtRecordStatus.LOOKUP_ERROR, error=error)


def select(rrset: TxtRRset, version: str) -> tuple[TxtRecordStatus, bytes]:
    """The one record that begins with ``version``: (VALID, its bytes), or
    (ABSENT | MULTIPLE, b"") when not exactly one does. VALID here says only
    that one was selected; its syntax is the caller's to judge."""
    prefix = version.encode()
    kept = []
    for strings in rrset:
        text = b"".join(strings)
        after = text[len(prefix) : len(prefix) + 1]
        if text.startswith(prefix) and after in (b"", b";", b" ", b"\t"):
            kept.append(text)
    if not kept:
        return TxtRecordStatus.ABSENT, b""
    if len(kept) > 1:
        return TxtRecordStatus.MULTIPLE, b""
    return TxtRecordStatus.VALID, kept[0]


def split_fields(record: bytes, version: str) -> list[tuple[str, str]] | str:
    """The ``name=value`` fields after the version, or an error message.

    Implements the shared frame of RFC 8461 s3.1 and RFC 8460 s3: the version,
    then one or more fields, each after a ";" with optional whitespace around
    it, and an optional ";" at the end. Values are returned raw (whitespace
    inside a value, as TLS-RPT's rua list allows around its commas, is kept):
    each record type checks its own values.
    """
    try:
        text = record.decode("ascii")
    except UnicodeDecodeError:
        return "not US-ASCII"
    segments = text.split(";")
    if segments[0].rstrip(_WSP) != version:
        return f"expected ';' after {version}"
    rest = segments[1:]
    if rest and rest[-1].strip(_WSP) == "":
        rest = rest[:-1]  # the optional trailing delimiter
    elif rest and rest[-1] != rest[-1].rstrip(_WSP):
        return "whitespace after the last field without a ';'"
    if not rest:
        return "no field after the version"
    fields: list[tuple[str, str]] = []
    for segment in rest:
        field = segment.strip(_WSP)
        if not field:
            return "empty field between ';'"
        name, equals, value = field.partition("=")
        if not equals or not _NAME.fullmatch(name):
            return f"malformed field {field!r}"
        fields.append((name, value))
    return fields


def extension_error(name: str, value: str) -> str:
    """'' when ``value`` is a well-formed extension value (sts-ext-value,
    the same production as RFC 8460's tlsrpt-ext-value)."""
    return "" if _EXT_VALUE.fullmatch(value) else f"malformed value of {name!r}"


def parse_tagged(rrset: TxtRRset, version: str, key: str) -> tuple[TxtRecordStatus, str, str]:
    """(status, the value of the required field ``key``, error) of the one
    record that begins with ``version``: the frame both record types share,
    with ``key`` required once and every other field an extension."""
    status, record = select(rrset, version)
    if status is not TxtRecordStatus.VALID:
        return status, "", ""
    fields = split_fields(record, version)
    if isinstance(fields, str):
        return TxtRecordStatus.INVALID, "", fields
    values = [value for name, value in fields if name == key]
    for name, value in fields:
        if name != key and (error := extension_error(name, value)):
            return TxtRecordStatus.INVALID, "", error
    if len(values) != 1:
        many = "more than one" if values else "no"
        return TxtRecordStatus.INVALID, "", f"{many} {key} field"
    return TxtRecordStatus.VALID, values[0], ""


def parse_sts_record(rrset: TxtRRset) -> StsRecord:
    """The ``_mta-sts`` TXT RRset (RFC 8461 section 3.1) as a sender reads it."""
    status, id_, error = parse_tagged(rrset, STS_VERSION, "id")
    if status is not TxtRecordStatus.VALID:
        return StsRecord(status, error=error)
    if not _ID.fullmatch(id_):
        return StsRecord(TxtRecordStatus.INVALID, error="id is not 1-32 letters and digits")
    return StsRecord(TxtRecordStatus.VALID, id=id_)
