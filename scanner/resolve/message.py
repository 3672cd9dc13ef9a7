"""The DNS message model: record types, header flags and the values the
codec builds (pure data, no parsing).

- RFC 1035 section 3.2.2 and 4.1: record types, the header's flags and
  counts, the question and the resource records; RFC 6891 section 6: the OPT
  record, its payload and the extended RCODE (section 9: BADVERS); RFC 4035
  section 3: the AD and CD flags; RFC 8914: the Extended DNS Error option.
- RFC 1035 section 3.3.9: MX rdata; section 3.3.13: SOA; section 3.3.14:
  TXT, one or more character-strings kept as bytes. TLSA rdata
  (RFC 6698 section 2.1) is scanner.tlsa.TlsaRecord, the scanner's one TLSA type.

Records, messages and the per-query result (scanner.resolve.answer) are
plain classes with ``Final`` attributes and value equality (``Value``),
built several times per query: compiled by mypyc (``make native``) each is a
native class, built by one C call and read-only, where a frozen dataclass or
a NamedTuple runs a Python-level constructor.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from scanner.tlsa import TlsaRecord


class RdType(IntEnum):
    """Record types the scanner asks for or has to recognise."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    MX = 15
    TXT = 16
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


class Value:
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


class Question(Value):
    _fields = ("name", "rdtype", "rdclass")
    __slots__ = _fields

    def __init__(self, name: str, rdtype: int, rdclass: int) -> None:
        self.name: Final = name
        self.rdtype: Final = rdtype
        self.rdclass: Final = rdclass


class Mx(Value):
    _fields = ("preference", "exchange")
    __slots__ = _fields

    def __init__(self, preference: int, exchange: str) -> None:
        self.preference: Final = preference
        self.exchange: Final = exchange


class Soa(Value):
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


# A and AAAA rdata is the address text, CNAME rdata the target name, TXT
# rdata its character-strings in wire order (RFC 1035 section 3.3.14), as
# bytes: what they mean (RFC 8461 section 3.1 joins them without a space) is
# the reader's to say, and they need not be text.
Rdata: TypeAlias = Mx | TlsaRecord | Soa | str | tuple[bytes, ...]


class Rr(Value):
    _fields = ("name", "rdtype", "ttl", "rdata")
    __slots__ = _fields

    def __init__(self, name: str, rdtype: int, ttl: int, rdata: Rdata) -> None:
        self.name: Final = name
        self.rdtype: Final = rdtype
        self.ttl: Final = ttl
        self.rdata: Final = rdata


class Message(Value):
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


class Malformed(Value):
    """Why a message could not be parsed; ``id`` is None below 2 octets."""

    _fields = ("id", "error")
    __slots__ = _fields

    def __init__(self, id: int | None, error: str) -> None:
        self.id: Final = id
        self.error: Final = error
