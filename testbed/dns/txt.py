"""TXT rdata in presentation format (RFC 1035 section 3.3.14 for the data,
section 5.1 for the zone-file text): one record is one or more
character-strings of at most 255 octets each.

The testbed publishes any text a scenario asks for, malformed included
(`_mta-sts` and `_smtp._tls` records with bad syntax, RFC 8461 section 3.1,
RFC 8460 section 3), so every octet that a zone file would read otherwise
(quote, backslash, anything outside printable ASCII) is escaped as \\DDD or
\\", and a string longer than 255 octets is split as DNS software does.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_STRING = 255


def character_strings(text: str) -> tuple[bytes, ...]:
    """``text`` (UTF-8) cut into character-strings of at most 255 octets."""
    data = text.encode()
    if not data:
        return (b"",)
    return tuple(data[i : i + MAX_STRING] for i in range(0, len(data), MAX_STRING))


def _quoted(string: bytes) -> str:
    if len(string) > MAX_STRING:
        raise ValueError(f"a character-string holds at most {MAX_STRING} octets, not {len(string)}")
    out = []
    for octet in string:
        if octet in (0x22, 0x5C):  # " and \ keep their meaning only escaped
            out.append("\\" + chr(octet))
        elif 0x20 <= octet <= 0x7E:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return '"' + "".join(out) + '"'


def txt_rdata(record: str | Sequence[str]) -> str:
    """The rdata of one TXT record: a str is split into 255-octet strings as
    needed; a sequence gives the character-strings themselves (each at most
    255 octets), as a publisher who splits a long record by hand does."""
    if isinstance(record, str):
        strings = character_strings(record)
    else:
        if not record:
            raise ValueError("a TXT record holds at least one character-string")
        strings = tuple(s.encode() for s in record)
    return " ".join(_quoted(s) for s in strings)
