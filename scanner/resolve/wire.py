"""DNS message codec for the resolve stage: queries out, messages in (pure).

Implements the parts of the DNS wire format the scanner needs:

- RFC 1035 section 4.1: header, question, resource records (names:
  scanner.resolve.dnsname, values: scanner.resolve.message).
- RFC 6891 section 6: an OPT record with a 1232-octet UDP payload (the DNS
  flag day 2020 value) and the DO bit (RFC 3225); the extended RCODE.
- RFC 6840 section 5.7: AD set in the query, so a validating resolver reports
  the validation state of its answer (Unbound sets AD only if AD or DO was).
- RFC 8914: the Extended DNS Error option, which says why an answer is bogus.
- RFC 2181 section 8: a TTL with the top bit set counts as zero.
- RFC 5952 section 4: the text of an IPv6 address.

Only MX, A, AAAA, TLSA (RFC 6698 section 2), CNAME, SOA and TXT (RFC 1035
section 3.3.14: one or more length-prefixed character-strings that fill the
rdata exactly) records are decoded; every other type (RRSIG, NSEC, NS, ...) is stepped over by its
RDLENGTH. Malformed input never raises: ``parse_message`` returns a
``Malformed`` value instead, which the client reports as DnsOutcome.MALFORMED.
What a message means for the question asked is scanner.resolve.answer.

Nothing here does I/O; the query ID is chosen by the caller.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from scanner.resolve.dnsname import OCTETS, FormError, Names, encode_name, read_name, skip_name
from scanner.resolve.message import (
    CLASS_IN,
    EDE_OPTION,
    EDNS_DO,
    EDNS_PAYLOAD,
    FLAG_AD,
    FLAG_RD,
    Malformed,
    Message,
    Mx,
    Question,
    Rdata,
    RdType,
    Rr,
    Soa,
)
from scanner.tlsa import TlsaRecord

_HEADER: Final = struct.Struct("!HHHHHH")
_TYPE_CLASS: Final = struct.Struct("!HH")
_RR_FIXED: Final = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH
_OPT_RR: Final = struct.Struct("!BHHIH")  # root owner, type, payload, TTL, RDLENGTH
# build_query returns header + question + an OPT record of this size.
OPT_RR_SIZE: Final = _OPT_RR.size
# After the ID: RD and AD set, one question, one additional record (OPT).
_QUERY_FLAGS_COUNTS: Final = _HEADER.pack(0, FLAG_RD | FLAG_AD, 1, 0, 0, 1)[2:]
_CLASS_IN: Final = CLASS_IN.to_bytes(2, "big")
_U16: Final = struct.Struct("!H")
_SOA_TAIL: Final = struct.Struct("!IIIII")
_IPV6_WORDS: Final = struct.Struct("!8H")

# Hot-path aliases: comparing plain ints avoids an enum lookup per record.
_A: Final = int(RdType.A)
_CNAME: Final = int(RdType.CNAME)
_SOA: Final = int(RdType.SOA)
_MX: Final = int(RdType.MX)
_AAAA: Final = int(RdType.AAAA)
_OPT: Final = int(RdType.OPT)
_TLSA: Final = int(RdType.TLSA)
_TXT: Final = int(RdType.TXT)
_SCAN_OPT: Final = _OPT_RR.pack(0, _OPT, EDNS_PAYLOAD, EDNS_DO, 0)  # payload 1232, DO set
_KEPT_TYPES: Final = frozenset((_A, _CNAME, _SOA, _MX, _AAAA, _TLSA, _TXT))
_ZERO_RUN: Final = re.compile(r":0(?::0)+:")


# --- queries --------------------------------------------------------------


def build_query(
    qid: int,
    name: str,
    rdtype: int,
    *,
    payload: int = EDNS_PAYLOAD,
    dnssec_ok: bool = True,
) -> bytes:
    """A recursive query with AD and EDNS0 (DO set unless ``dnssec_ok`` is off).

    Raises ValueError for an ID or type outside 16 bits or a bad name.
    """
    if not 0 <= qid <= 0xFFFF or not 0 <= rdtype <= 0xFFFF:
        raise ValueError(f"ID {qid} or type {rdtype} outside 16 bits")
    # The scanner's usual OPT record is built once (a query is built per
    # question asked: the struct packing was a third of its cost).
    if payload == EDNS_PAYLOAD and dnssec_ok:
        opt = _SCAN_OPT
    else:
        opt = _OPT_RR.pack(0, _OPT, payload, EDNS_DO if dnssec_ok else 0, 0)
    return b"".join(
        (OCTETS[qid >> 8], OCTETS[qid & 0xFF], _QUERY_FLAGS_COUNTS, encode_name(name),
         OCTETS[rdtype >> 8], OCTETS[rdtype & 0xFF], _CLASS_IN, opt)
    )  # fmt: skip


# --- answers --------------------------------------------------------------


def format_ipv6(packed: bytes) -> str:
    """RFC 5952 text for 16 octets: lower case, longest zero run as '::'."""
    # %-formatting a tuple costs half of str.format here (hot path).
    text = ":%x:%x:%x:%x:%x:%x:%x:%x:" % _IPV6_WORDS.unpack(packed)  # noqa: UP031
    best: re.Match[str] | None = None
    for run in _ZERO_RUN.finditer(text):
        if best is None or run.end() - run.start() > best.end() - best.start():
            best = run
    if best is None:
        return text[1:-1]
    return text[1 : best.start()] + "::" + text[best.end() : -1]


def _rdata(wire: bytes, rdtype: int, start: int, end: int, names: Names) -> Rdata:
    size = end - start
    if rdtype == _A:
        if size != 4:
            raise FormError(f"A rdata of {size} octets")
        return f"{wire[start]}.{wire[start + 1]}.{wire[start + 2]}.{wire[start + 3]}"
    if rdtype == _AAAA:
        if size != 16:
            raise FormError(f"AAAA rdata of {size} octets")
        return format_ipv6(wire[start:end])
    if rdtype == _TLSA:
        if size < 3:
            raise FormError(f"TLSA rdata of {size} octets")
        return TlsaRecord(wire[start], wire[start + 1], wire[start + 2], wire[start + 3 : end])
    if rdtype == _MX:
        if size < 3:
            raise FormError(f"MX rdata of {size} octets")
        exchange, after = read_name(wire, start + 2, names)
        if after != end:
            raise FormError("MX exchange does not fill its rdata")
        return Mx((wire[start] << 8) | wire[start + 1], exchange)
    if rdtype == _CNAME:
        target, after = read_name(wire, start, names)
        if after != end:
            raise FormError("CNAME target does not fill its rdata")
        return target
    if rdtype == _TXT:
        return _txt_strings(wire, start, end)
    # SOA: the only other kept type.
    mname, off = read_name(wire, start, names)
    rname, off = read_name(wire, off, names)
    if off + 20 != end:
        raise FormError("SOA rdata has the wrong length")
    serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(wire, off)
    return Soa(mname, rname, serial, refresh, retry, expire, minimum)


def _txt_strings(wire: bytes, start: int, end: int) -> tuple[bytes, ...]:
    """TXT-DATA (RFC 1035 section 3.3.14): one or more <character-string>s,
    each a length octet and that many octets, filling the rdata exactly."""
    if start == end:
        raise FormError("TXT rdata without a character-string")
    strings: list[bytes] = []
    while start < end:
        after = start + 1 + wire[start]
        if after > end:
            raise FormError("TXT character-string runs past its rdata")
        strings.append(wire[start + 1 : after])
        start = after
    return tuple(strings)


def _record_header(wire: bytes, off: int) -> tuple[int, int, int, int, int]:
    """Step over the owner of the record at ``off``; its type, class, TTL,
    and where its rdata starts and ends (RFC 1035 section 4.1.3)."""
    off = skip_name(wire, off)
    if off + 10 > len(wire):
        raise FormError("record header runs past the end of the message")
    rdtype, rdclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, off)
    end = off + 10 + rdlength
    if end > len(wire):
        raise FormError("rdata runs past the end of the message")
    return rdtype, rdclass, ttl, off + 10, end


def _read_section(wire: bytes, off: int, count: int, names: Names) -> tuple[list[Rr], int]:
    kept: list[Rr] = []
    for _ in range(count):
        owner_at = off
        rdtype, rdclass, ttl, off, end = _record_header(wire, off)
        if rdtype in _KEPT_TYPES and rdclass == CLASS_IN:
            if ttl > 0x7FFFFFFF:
                ttl = 0  # RFC 2181 section 8: the top bit set means zero
            # The usual owner, a pointer to a name already read, is a lookup.
            owner = read_name(wire, owner_at, names)[0]
            kept.append(Rr(owner, rdtype, ttl, _rdata(wire, rdtype, off, end, names)))
        off = end
    return kept, off


def _read_ede(wire: bytes, off: int, end: int) -> tuple[int | None, str]:
    """First Extended DNS Error in OPT rdata (RFC 6891 section 6.1.2)."""
    code: int | None = None
    text = ""
    while off < end:
        if off + 4 > end:
            raise FormError("truncated EDNS option header")
        option, length = _TYPE_CLASS.unpack_from(wire, off)
        off += 4
        if off + length > end:
            raise FormError("EDNS option runs past its record")
        if option == EDE_OPTION and code is None:
            if length < 2:
                raise FormError("EDE option shorter than its info code")
            code = _U16.unpack_from(wire, off)[0]
            # Not NUL-terminated by the RFC, but some servers add one.
            text = wire[off + 2 : off + length].decode("utf-8", "replace").removesuffix("\x00")
        off += length
    return code, text


def _parse(wire: bytes, known_name: str | None) -> Message:
    size = len(wire)
    if size < 12:
        raise FormError(f"message of {size} octets is shorter than a header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    off = 12
    names: Names = {}
    question = None
    if qdcount > 1:
        raise FormError(f"{qdcount} questions")
    if qdcount == 1:
        if known_name is None:
            qname, off = read_name(wire, off, names)
        else:
            # The caller compared these octets with its own query's: step
            # over them; owners that point here find the text in ``names``.
            qname, off = known_name, skip_name(wire, off)
            names[12] = (known_name, off - 12)
        if off + 4 > size:
            raise FormError("question runs past the end of the message")
        qtype, qclass = _TYPE_CLASS.unpack_from(wire, off)
        off += 4
        question = Question(qname, qtype, qclass)
    answer, off = _read_section(wire, off, ancount, names)
    authority, off = _read_section(wire, off, nscount, names)
    rcode = flags & 0x000F
    payload: int | None = None
    ede_code: int | None = None
    ede_text = ""
    for _ in range(arcount):
        rdtype, rdclass, ttl, off, end = _record_header(wire, off)
        if rdtype == _OPT:
            if payload is not None:
                raise FormError("more than one OPT record")
            payload = rdclass
            rcode |= (ttl >> 24) << 4
            ede_code, ede_text = _read_ede(wire, off, end)
        off = end
    if off != size:
        raise FormError(f"{size - off} octets after the last record")
    return Message(
        qid, flags, rcode, question, tuple(answer), tuple(authority), payload, ede_code, ede_text
    )


def parse_message(wire: bytes, *, known_name: str | None = None) -> Message | Malformed:
    """Parse a DNS message; anything malformed is returned, never raised.

    ``known_name``: the caller has checked that the question's name is this
    one, octet for octet (case aside; a name that ``is_plain_name`` accepts,
    so that its text is its canonical form), so it is not decoded again.
    """
    try:
        return _parse(wire, known_name)
    except FormError as exc:
        return Malformed(_U16.unpack_from(wire)[0] if len(wire) >= 2 else None, str(exc))
