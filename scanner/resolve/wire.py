"""DNS message codec for the resolve stage: queries out, answers in (pure).

Implements the parts of the DNS wire format the scanner needs:

- RFC 1035 section 4.1: header, question, resource records; section 4.1.4
  name compression, with pointers required to point strictly backwards (so a
  pointer loop cannot exist) and names capped at 255 octets (section 2.3.4).
- RFC 6891 section 6: an OPT record with a 1232-octet UDP payload (the DNS
  flag day 2020 value) and the DO bit (RFC 3225); the extended RCODE.
- RFC 6840 section 5.7: AD set in the query, so a validating resolver reports
  the validation state of its answer (Unbound sets AD only if AD or DO was).
- RFC 8914: the Extended DNS Error option, which says why an answer is bogus.
- RFC 2308 section 5: the TTL of a negative answer from the SOA record;
  RFC 2181 section 8: a TTL with the top bit set counts as zero.
- RFC 4034 section 6.2 and RFC 4343: names compare case-insensitively, so
  every name leaves this module lower-cased, absolute, with a trailing dot,
  and with the escapes of RFC 1035 section 5.1 for unusual octets.

Only MX, A, AAAA, TLSA (RFC 6698 section 2), CNAME and SOA records are
decoded; every other type (RRSIG, NSEC, NS, ...) is stepped over by its
RDLENGTH. Malformed input never raises: ``parse_message`` returns a
``Malformed`` value instead, which the client reports as DnsOutcome.MALFORMED.

Nothing here does I/O; the query ID is chosen by the caller. Wire-level
values (messages, records) and the per-query result, DnsAnswer, are plain
classes with ``Final`` attributes and value equality (``_Value``), built
several times per query: compiled by mypyc (``make native``) each is a native
class, built by one C call and read-only, where a frozen dataclass or a
NamedTuple runs a Python-level constructor.
"""

from __future__ import annotations

import re
import struct
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord


class RdType(IntEnum):
    """Record types the scanner asks for or has to recognise."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    MX = 15
    AAAA = 28
    OPT = 41
    RRSIG = 46
    NSEC = 47
    TLSA = 52


class Rcode(IntEnum):
    """Response codes (RFC 1035 section 4.1.1, RFC 6891 section 9)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16


CLASS_IN: Final = 1
EDNS_PAYLOAD: Final = 1232
MAX_CNAME_CHAIN: Final = 16

# Header flag bits (RFC 1035 section 4.1.1; AD and CD: RFC 4035 section 3).
FLAG_QR: Final = 0x8000
FLAG_AA: Final = 0x0400
FLAG_TC: Final = 0x0200
FLAG_RD: Final = 0x0100
FLAG_RA: Final = 0x0080
FLAG_AD: Final = 0x0020
FLAG_CD: Final = 0x0010
EDNS_DO: Final = 0x8000
EDE_OPTION: Final = 15

# RFC 8914 section 4: info codes 6-12 all mean DNSSEC validation failed.
BOGUS_EDE_CODES: Final = frozenset(range(6, 13))

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
_SCAN_OPT: Final = _OPT_RR.pack(0, _OPT, EDNS_PAYLOAD, EDNS_DO, 0)  # payload 1232, DO set
_KEPT_TYPES: Final = frozenset((_A, _CNAME, _SOA, _MX, _AAAA, _TLSA))

# Octets written as themselves in presentation format (RFC 1035 section 5.1);
# anything else is escaped the way dnspython and BIND do it.
_SPECIAL: Final = b'"().;\\@$'
_PLAIN: Final = bytes(b for b in range(0x21, 0x7F) if b not in _SPECIAL)
_PLAIN_OR_DOT: Final = _PLAIN + b"."
_ZERO_RUN: Final = re.compile(r":0(?::0)+:")
# Each octet value as bytes: label lengths and 16-bit fields are joined from
# these (a method call such as int.to_bytes costs more than the rest).
_OCTETS: Final = tuple(bytes((value,)) for value in range(256))


class _Value:
    """An immutable record compared, ordered, hashed and shown by its ``_fields``.

    The compiled build makes each subclass a native class: building one is a
    C call (about 45 ns; a NamedTuple's generated ``__new__`` about 400, a
    frozen dataclass's ``__init__`` about 800, both run by the interpreter),
    and its ``Final`` attributes cannot be assigned. From source, mypy
    enforces ``Final``; the slots keep instances small.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __lt__(self, other: object) -> bool:
        # Field by field, as tuples sort: RRsets compare as sorted lists.
        if type(other) is not type(self):
            return NotImplemented
        return self._values() < other._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"


class Question(_Value):
    _fields = ("name", "rdtype", "rdclass")
    __slots__ = _fields

    def __init__(self, name: str, rdtype: int, rdclass: int) -> None:
        self.name: Final = name
        self.rdtype: Final = rdtype
        self.rdclass: Final = rdclass


class Mx(_Value):
    _fields = ("preference", "exchange")
    __slots__ = _fields

    def __init__(self, preference: int, exchange: str) -> None:
        self.preference: Final = preference
        self.exchange: Final = exchange


class Soa(_Value):
    _fields = ("mname", "rname", "serial", "refresh", "retry", "expire", "minimum")
    __slots__ = _fields

    def __init__(
        self, mname: str, rname: str, serial: int, refresh: int, retry: int, expire: int,
        minimum: int,
    ) -> None:  # fmt: skip
        self.mname: Final = mname
        self.rname: Final = rname
        self.serial: Final = serial
        self.refresh: Final = refresh
        self.retry: Final = retry
        self.expire: Final = expire
        self.minimum: Final = minimum


# A and AAAA rdata is the address text, CNAME rdata the target name.
Rdata: TypeAlias = Mx | TlsaRecord | Soa | str


class Rr(_Value):
    _fields = ("name", "rdtype", "ttl", "rdata")
    __slots__ = _fields

    def __init__(self, name: str, rdtype: int, ttl: int, rdata: Rdata) -> None:
        self.name: Final = name
        self.rdtype: Final = rdtype
        self.ttl: Final = ttl
        self.rdata: Final = rdata


class Message(_Value):
    """A parsed DNS message, keeping only what the scanner uses.

    ``rcode`` is the full 12-bit code (header bits plus the OPT extension).
    ``answer`` and ``authority`` hold the class IN records of the decoded
    types, in wire order. ``edns_payload`` is None when there was no OPT.
    """

    _fields = (
        "id", "flags", "rcode", "question", "answer", "authority", "edns_payload", "ede_code",
        "ede_text",
    )  # fmt: skip
    __slots__ = _fields

    def __init__(
        self,
        id: int,
        flags: int,
        rcode: int,
        question: Question | None,
        answer: tuple[Rr, ...],
        authority: tuple[Rr, ...],
        edns_payload: int | None = None,
        ede_code: int | None = None,
        ede_text: str = "",
    ) -> None:
        self.id: Final = id
        self.flags: Final = flags
        self.rcode: Final = rcode
        self.question: Final = question
        self.answer: Final = answer
        self.authority: Final = authority
        self.edns_payload: Final = edns_payload
        self.ede_code: Final = ede_code
        self.ede_text: Final = ede_text

    @property
    def qr(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def aa(self) -> bool:
        return bool(self.flags & FLAG_AA)

    @property
    def tc(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def ad(self) -> bool:
        return bool(self.flags & FLAG_AD)


class Malformed(_Value):
    """Why a message could not be parsed; ``id`` is None below 2 octets."""

    _fields = ("id", "error")
    __slots__ = _fields

    def __init__(self, id: int | None, error: str) -> None:
        self.id: Final = id
        self.error: Final = error


class _FormError(Exception):
    """Internal: unwinds the walker; never leaves this module."""


# --- names ---------------------------------------------------------------


def _label_text(label: bytes) -> str:
    out = []
    for octet in label:
        if octet in _SPECIAL:
            out.append("\\" + chr(octet))
        elif 0x20 < octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


# Within one message, the decoded text and wire length of the name at each
# offset where a name started or a compression pointer led: the next pointer
# there (typically every owner name) is one dict lookup, not a walk.
_Names: TypeAlias = dict[int, tuple[str, int]]


def _read_name(wire: bytes, off: int, names: _Names) -> tuple[str, int]:
    """Decode the name at ``off``; return it and the offset just past it."""
    labels: list[bytes] = []
    # (offset, labels and octets read before it): the start, then each
    # pointer target
    hops = [(off, 0, 0)]
    size = len(wire)
    end = -1
    octets = 0  # wire length of the labels read so far
    # A pointer must point before the previous one (or before the start of
    # the name): offsets then strictly decrease, so the walk terminates.
    limit = off
    tail, tail_length = ".", 1
    while True:
        # Also the bounds check for the label just read: it must be followed
        # by at least one more octet.
        if off >= size:
            raise _FormError("name runs past the end of the message")
        count = wire[off]
        if count == 0:
            off += 1
            break
        if count < 0x40:
            off += count + 1
            labels.append(wire[off - count : off])
            octets += count + 1
        elif count >= 0xC0:
            if off + 1 >= size:
                raise _FormError("truncated compression pointer")
            target = ((count & 0x3F) << 8) | wire[off + 1]
            if target >= limit:
                raise _FormError("compression pointer does not point backwards")
            if end < 0:
                end = off + 2
            known = names.get(target)
            if known is not None:
                tail, tail_length = known
                break
            hops.append((target, len(labels), octets))
            limit = off = target
        else:
            raise _FormError(f"unknown label type 0x{count:02x}")
    if end < 0:
        end = off
    if not labels:
        return tail, end
    wire_length = octets + tail_length
    if wire_length > 255:
        raise _FormError("name longer than 255 octets")
    raw = b".".join(labels).lower()
    # Fast path: only plain octets, and the only dots are the separators.
    # Each label's text is then as long as its wire form with the length
    # octet, so a suffix's text starts at its octet offset.
    if not raw.translate(None, _PLAIN_OR_DOT) and raw.count(b".") == len(labels) - 1:
        head = raw.decode("ascii")
        text = head + "." if tail == "." else head + "." + tail
        for target, _, before in hops:
            names[target] = (text[before:] or ".", wire_length - before)
        return text, end
    escaped = [_label_text(label.lower()) for label in labels]
    head = ".".join(escaped)
    text = head + "." if tail == "." else head + "." + tail
    for target, index, before in hops:
        chars = index + sum(len(label) for label in escaped[:index])
        names[target] = (text[chars:] or ".", wire_length - before)
    return text, end


def _skip_name(wire: bytes, off: int) -> int:
    """Step over a name without decoding it (owner of a record not kept)."""
    size = len(wire)
    while True:
        if off >= size:
            raise _FormError("name runs past the end of the message")
        count = wire[off]
        if count == 0:
            return off + 1
        if count < 0x40:
            off += count + 1
        elif count >= 0xC0:
            if off + 2 > size:
                raise _FormError("truncated compression pointer")
            return off + 2
        else:
            raise _FormError(f"unknown label type 0x{count:02x}")


def is_plain_name(name: str) -> bool:
    """Lower-case ASCII made only of octets that need no escape: the text of
    such a name is what decoding its wire form gives (``known_name`` above)."""
    if not name.isascii() or name != name.lower():
        return False
    return not name.encode("ascii").translate(None, _PLAIN_OR_DOT)


def normalize_name(name: str) -> str:
    """Lower-case and make absolute (trailing dot); no other validation."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _unescape_labels(name: str) -> list[bytes]:
    labels: list[bytes] = []
    label = bytearray()
    i, size = 0, len(name)
    while i < size:
        char = name[i]
        if char == ".":
            labels.append(bytes(label))
            label.clear()
            i += 1
        elif char == "\\":
            digits = name[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise ValueError(f"escape \\{digits} out of range in {name!r}")
                label.append(value)
                i += 4
            elif i + 1 < size:
                label.extend(name[i + 1].encode("ascii"))
                i += 2
            else:
                raise ValueError(f"dangling backslash in {name!r}")
        else:
            label.extend(char.encode("ascii"))
            i += 1
    if label:
        labels.append(bytes(label))
    return labels


def encode_name(name: str) -> bytes:
    """Encode a presentation-format name (relative names are made absolute).

    Raises ValueError for names that cannot be sent: empty labels, labels over
    63 octets, names over 255 octets, non-ASCII text (IDNA is the caller's job).
    """
    if name in (".", ""):
        return b"\x00"
    try:
        if "\\" in name:
            labels = _unescape_labels(name)
        else:
            labels = name.removesuffix(".").encode("ascii").split(b".")
    except UnicodeEncodeError:
        raise ValueError(f"non-ASCII name {name!r}: convert it to IDNA first") from None
    # Joined once: appending to a bytearray label by label cost twice as much.
    parts: list[bytes] = []
    for label in labels:
        size = len(label)
        if not 0 < size <= 63:
            raise ValueError(f"label of {size} octets in {name!r}")
        parts.append(_OCTETS[size])
        parts.append(label)
    parts.append(b"\x00")
    encoded = b"".join(parts)
    if len(encoded) > 255:
        raise ValueError(f"name of {len(encoded)} octets in {name!r}")
    return encoded


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
        (_OCTETS[qid >> 8], _OCTETS[qid & 0xFF], _QUERY_FLAGS_COUNTS, encode_name(name),
         _OCTETS[rdtype >> 8], _OCTETS[rdtype & 0xFF], _CLASS_IN, opt)
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


def _rdata(wire: bytes, rdtype: int, start: int, end: int, names: _Names) -> Rdata:
    size = end - start
    if rdtype == _A:
        if size != 4:
            raise _FormError(f"A rdata of {size} octets")
        return f"{wire[start]}.{wire[start + 1]}.{wire[start + 2]}.{wire[start + 3]}"
    if rdtype == _AAAA:
        if size != 16:
            raise _FormError(f"AAAA rdata of {size} octets")
        return format_ipv6(wire[start:end])
    if rdtype == _TLSA:
        if size < 3:
            raise _FormError(f"TLSA rdata of {size} octets")
        return TlsaRecord(wire[start], wire[start + 1], wire[start + 2], wire[start + 3 : end])
    if rdtype == _MX:
        if size < 3:
            raise _FormError(f"MX rdata of {size} octets")
        exchange, after = _read_name(wire, start + 2, names)
        if after != end:
            raise _FormError("MX exchange does not fill its rdata")
        return Mx((wire[start] << 8) | wire[start + 1], exchange)
    if rdtype == _CNAME:
        target, after = _read_name(wire, start, names)
        if after != end:
            raise _FormError("CNAME target does not fill its rdata")
        return target
    # SOA: the only other kept type.
    mname, off = _read_name(wire, start, names)
    rname, off = _read_name(wire, off, names)
    if off + 20 != end:
        raise _FormError("SOA rdata has the wrong length")
    serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(wire, off)
    return Soa(mname, rname, serial, refresh, retry, expire, minimum)


def _read_section(wire: bytes, off: int, count: int, names: _Names) -> tuple[list[Rr], int]:
    kept: list[Rr] = []
    size = len(wire)
    for _ in range(count):
        owner_at = off
        known: tuple[str, int] | None = None
        if off + 1 < size and wire[off] >= 0xC0:
            # The usual owner: one pointer back to a name already decoded.
            target = ((wire[off] & 0x3F) << 8) | wire[off + 1]
            known = names.get(target) if target < off else None
            off += 2
        else:
            off = _skip_name(wire, off)
        if off + 10 > size:
            raise _FormError("record header runs past the end of the message")
        rdtype, rdclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, off)
        off += 10
        end = off + rdlength
        if end > size:
            raise _FormError("rdata runs past the end of the message")
        if rdtype in _KEPT_TYPES and rdclass == CLASS_IN:
            if ttl > 0x7FFFFFFF:
                ttl = 0  # RFC 2181 section 8: the top bit set means zero
            owner = known[0] if known else _read_name(wire, owner_at, names)[0]
            kept.append(Rr(owner, rdtype, ttl, _rdata(wire, rdtype, off, end, names)))
        off = end
    return kept, off


def _read_ede(wire: bytes, off: int, end: int) -> tuple[int | None, str]:
    """First Extended DNS Error in OPT rdata (RFC 6891 section 6.1.2)."""
    code: int | None = None
    text = ""
    while off < end:
        if off + 4 > end:
            raise _FormError("truncated EDNS option header")
        option, length = _TYPE_CLASS.unpack_from(wire, off)
        off += 4
        if off + length > end:
            raise _FormError("EDNS option runs past its record")
        if option == EDE_OPTION and code is None:
            if length < 2:
                raise _FormError("EDE option shorter than its info code")
            code = _U16.unpack_from(wire, off)[0]
            # Not NUL-terminated by the RFC, but some servers add one.
            text = wire[off + 2 : off + length].decode("utf-8", "replace").removesuffix("\x00")
        off += length
    return code, text


def _parse(wire: bytes, known_name: str | None) -> Message:
    size = len(wire)
    if size < 12:
        raise _FormError(f"message of {size} octets is shorter than a header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    off = 12
    names: _Names = {}
    question = None
    if qdcount > 1:
        raise _FormError(f"{qdcount} questions")
    if qdcount == 1:
        if known_name is None:
            qname, off = _read_name(wire, off, names)
        else:
            # The caller compared these octets with its own query's: step
            # over them; owners that point here find the text in ``names``.
            qname, off = known_name, _skip_name(wire, off)
            names[12] = (known_name, off - 12)
        if off + 4 > size:
            raise _FormError("question runs past the end of the message")
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
        off = _skip_name(wire, off)
        if off + 10 > size:
            raise _FormError("record header runs past the end of the message")
        rdtype, rdclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, off)
        off += 10
        end = off + rdlength
        if end > size:
            raise _FormError("rdata runs past the end of the message")
        if rdtype == _OPT:
            if payload is not None:
                raise _FormError("more than one OPT record")
            payload = rdclass
            rcode |= (ttl >> 24) << 4
            ede_code, ede_text = _read_ede(wire, off, end)
        off = end
    if off != size:
        raise _FormError(f"{size - off} octets after the last record")
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
    except _FormError as exc:
        return Malformed(_U16.unpack_from(wire)[0] if len(wire) >= 2 else None, str(exc))


# --- from a message to an answer --------------------------------------------


def dnssec_status(outcome: DnsOutcome, ad: bool, ede_code: int | None) -> DnssecStatus:
    """DNSSEC status of one answer from a trusted validating resolver.

    The resolver is local, so its AD bit is trusted (RFC 7672 section 2.1):
    a response (data, NODATA or NXDOMAIN) with AD is secure, without AD
    insecure. A validating resolver answers SERVFAIL for bogus data; the EDE
    codes 6-12 (RFC 8914 section 4) say it was a validation failure, so that
    SERVFAIL is bogus; any other SERVFAIL, and every transport failure, leaves
    the status indeterminate.
    """
    if outcome in (DnsOutcome.ANSWER, DnsOutcome.NODATA, DnsOutcome.NXDOMAIN):
        return DnssecStatus.SECURE if ad else DnssecStatus.INSECURE
    if outcome is DnsOutcome.SERVFAIL and ede_code in BOGUS_EDE_CODES:
        return DnssecStatus.BOGUS
    return DnssecStatus.INDETERMINATE


def is_transient(outcome: DnsOutcome, ede_code: int | None) -> bool:
    """Whether an answer may well be different if asked again later.

    A timeout, a refusal, a truncated answer that TCP could not fetch, and a
    SERVFAIL that is not a validation failure (no EDE 6-12, RFC 8914 section
    4) say something about the path or the resolver's state at the time, not
    about the name: they are retried, never recorded as facts. A malformed
    answer is not: the same question gets the same bytes, and a name that
    cannot be encoded never leaves the client.
    """
    if outcome is DnsOutcome.SERVFAIL:
        return ede_code not in BOGUS_EDE_CODES
    return outcome in (DnsOutcome.TIMEOUT, DnsOutcome.REFUSED, DnsOutcome.TRUNCATED)


class DnsAnswer(_Value):
    """The result of one query, whatever happened to it (immutable).

    ``records`` holds the rdata of type ``qtype`` owned by the end of the
    CNAME chain; ``cnames`` the chain's targets in order (the first is the
    target of ``qname``). ``ttl`` is the smallest TTL across the chain and the
    records, or for NODATA/NXDOMAIN the negative TTL from the SOA (RFC 2308
    section 5); None when unknown. ``rcode`` is None when no response was
    accepted. ``server`` is the resolver that answered (or was last tried),
    ``tcp`` whether the answer came over TCP (after TC), ``attempts`` how
    many UDP queries were sent, ``elapsed`` the seconds from the first send
    to the result.
    """

    _fields = (
        "qname", "qtype", "outcome", "rcode", "ad", "records", "cnames", "ttl", "ede_code",
        "ede_text", "error", "server", "tcp", "attempts", "elapsed",
    )  # fmt: skip
    __slots__ = _fields

    def __init__(
        self,
        qname: str,
        qtype: int,
        outcome: DnsOutcome,
        rcode: int | None = None,
        ad: bool = False,
        records: tuple[Rdata, ...] = (),
        cnames: tuple[str, ...] = (),
        ttl: int | None = None,
        ede_code: int | None = None,
        ede_text: str = "",
        error: str = "",
        server: str = "",
        tcp: bool = False,
        attempts: int = 0,
        elapsed: float = 0.0,
    ) -> None:
        self.qname: Final = qname
        self.qtype: Final = qtype
        self.outcome: Final = outcome
        self.rcode: Final = rcode
        self.ad: Final = ad
        self.records: Final = records
        self.cnames: Final = cnames
        self.ttl: Final = ttl
        self.ede_code: Final = ede_code
        self.ede_text: Final = ede_text
        self.error: Final = error
        self.server: Final = server
        self.tcp: Final = tcp
        self.attempts: Final = attempts
        self.elapsed: Final = elapsed

    @property
    def dnssec(self) -> DnssecStatus:
        return dnssec_status(self.outcome, self.ad, self.ede_code)

    @property
    def canonical_name(self) -> str:
        """The owner of ``records``: the last CNAME target, else ``qname``."""
        return self.cnames[-1] if self.cnames else self.qname

    @property
    def mx(self) -> tuple[Mx, ...]:
        return tuple(r for r in self.records if isinstance(r, Mx))

    @property
    def tlsa(self) -> tuple[TlsaRecord, ...]:
        return tuple(r for r in self.records if isinstance(r, TlsaRecord))

    @property
    def addresses(self) -> tuple[str, ...]:
        """A or AAAA addresses (for CNAME queries, the target instead)."""
        return tuple(r for r in self.records if isinstance(r, str))


_RCODE_OUTCOMES: Final = {
    int(Rcode.NOERROR): DnsOutcome.ANSWER,
    int(Rcode.SERVFAIL): DnsOutcome.SERVFAIL,
    int(Rcode.NXDOMAIN): DnsOutcome.NXDOMAIN,
    int(Rcode.REFUSED): DnsOutcome.REFUSED,
}


def answer_from_message(
    message: Message,
    qname: str,
    qtype: int,
    *,
    server: str = "",
    tcp: bool = False,
    attempts: int = 1,
    elapsed: float = 0.0,
) -> DnsAnswer:
    """Follow the CNAME chain from ``qname`` (normalised) and classify.

    Rcodes other than NOERROR, SERVFAIL, NXDOMAIN and REFUSED (FORMERR,
    NOTIMP, BADVERS...) are the server declining the query, so they map to
    REFUSED; ``rcode`` keeps the number and ``error`` names it.
    """
    rcode = message.rcode
    outcome = _RCODE_OUTCOMES.get(rcode, DnsOutcome.REFUSED)
    error = "" if rcode in _RCODE_OUTCOMES else f"rcode {_rcode_name(rcode)}"
    owner = qname
    cnames: list[str] = []
    ttls: list[int] = []
    while qtype != _CNAME:
        link = _cname_of(message.answer, owner)
        if link is None:
            break
        if link[0] in cnames or link[0] == qname:
            error = f"CNAME loop at {owner}"
            break
        if len(cnames) == MAX_CNAME_CHAIN:
            error = f"CNAME chain longer than {MAX_CNAME_CHAIN}"
            break
        owner = link[0]
        cnames.append(owner)
        ttls.append(link[1])
    records: list[Rdata] = []
    for rr in message.answer:
        if rr.rdtype == qtype and rr.name == owner:
            records.append(rr.rdata)
            ttls.append(rr.ttl)
    if outcome is DnsOutcome.ANSWER and not records:
        outcome = DnsOutcome.NODATA
    if outcome in (DnsOutcome.NODATA, DnsOutcome.NXDOMAIN):
        for rr in message.authority:
            if isinstance(rr.rdata, Soa):
                ttls += (rr.ttl, rr.rdata.minimum)
                break
        else:
            ttls.clear()  # no SOA: nothing says how long the denial holds
    ttl = min(ttls) if ttls else None
    return DnsAnswer(
        qname,
        qtype,
        outcome,
        rcode,
        message.ad,
        tuple(records),
        tuple(cnames),
        ttl,
        message.ede_code,
        message.ede_text,
        error,
        server,
        tcp,
        attempts,
        elapsed,
    )


def _cname_of(answer: tuple[Rr, ...], owner: str) -> tuple[str, int] | None:
    """Target and TTL of the CNAME owned by ``owner``, if the answer has one."""
    for rr in answer:
        if rr.rdtype == _CNAME and rr.name == owner and isinstance(rr.rdata, str):
            return rr.rdata, rr.ttl
    return None


def _rcode_name(rcode: int) -> str:
    try:
        return Rcode(rcode).name
    except ValueError:
        return str(rcode)
