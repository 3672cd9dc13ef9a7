"""The DNS codec against hand-written bytes and against dnspython as oracle."""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.resolve.dnsname import is_plain_name
from scanner.resolve.message import Malformed, Message, Mx, Question, Rr, Soa
from scanner.resolve.wire import build_query, format_ipv6, parse_message
from scanner.tlsa import TlsaRecord

MX, A, AAAA, TLSA, CNAME, SOA, TXT = 15, 1, 28, 52, 5, 6, 16
KEPT = {MX, A, AAAA, TLSA, CNAME, SOA, TXT}


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x8180) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qd, an, ns, ar)


def rr(owner: bytes, rdtype: int, rdata: bytes, ttl: int = 300, rdclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata)) + rdata


def rr_a(owner: bytes, rdata: bytes, ttl: int = 300) -> bytes:
    return rr(owner, A, rdata, ttl)


EXAMPLE = b"\x07example\x03com\x00"  # at offset 12 in every message below
QUESTION = EXAMPLE + struct.pack("!HH", MX, 1)
PTR_EXAMPLE = b"\xc0\x0c"
PTR_COM = b"\xc0\x14"  # the "com" label of the question name
OPT = rr(b"\x00", 41, b"", ttl=0x8000, rdclass=1232)
LABEL63 = b"\x3f" + b"a" * 63


def ok(wire: bytes) -> Message:
    parsed = parse_message(wire)
    assert isinstance(parsed, Message), parsed
    return parsed


# --- queries ---------------------------------------------------------------


def test_build_query_bytes() -> None:
    assert build_query(0xBEEF, "Example.com", MX) == (
        b"\xbe\xef\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01"  # RD and AD, one question, OPT
        + b"\x07Example\x03com\x00\x00\x0f\x00\x01"
        + b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"  # payload 1232, DO
    )


def test_build_query_as_dnspython_reads_it() -> None:
    query = dns.message.from_wire(build_query(7, "_25._tcp.mx.example.", TLSA))
    assert query.id == 7
    assert query.flags == dns.flags.RD | dns.flags.AD
    assert (query.edns, query.payload, query.ednsflags) == (0, 1232, dns.flags.DO)
    assert query.question[0].name == dns.name.from_text("_25._tcp.mx.example.")
    assert query.question[0].rdtype == TLSA


def test_build_query_without_do() -> None:
    query = dns.message.from_wire(build_query(7, "a.example", A, payload=4096, dnssec_ok=False))
    assert (query.payload, query.ednsflags) == (4096, 0)


@pytest.mark.parametrize(("qid", "rdtype"), [(-1, A), (0x10000, A), (1, 0x10000)])
def test_build_query_rejects_out_of_range(qid: int, rdtype: int) -> None:
    with pytest.raises(ValueError, match="16 bits"):
        build_query(qid, "example.com", rdtype)


# --- answers: hand-written bytes ----------------------------------------------


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (b"MiXeD", "mixed."),
        (b"a.b", "a\\.b."),
        (b"sp ace", "sp\\032ace."),
        (b"\x00\x7f\xff", "\\000\\127\\255."),
        (b'"().;\\@$', '\\"\\(\\)\\.\\;\\\\\\@\\$.'),
        (b"_25-*", "_25-*."),
        (b"\xc4B", "\\196b."),
    ],
)
def test_names_are_lowercased_and_escaped_like_dnspython(label: bytes, text: str) -> None:
    wire = header() + bytes([len(label)]) + label + b"\x00" + struct.pack("!HH", A, 1)
    assert ok(wire).question == Question(text, A, 1)
    assert dns.name.Name([label, b""]).to_text().lower() == text


def test_every_kept_type_is_decoded_and_the_rest_skipped() -> None:
    tlsa = bytes([3, 1, 1]) + bytes(range(32))
    soa = b"\x02ns" + PTR_EXAMPLE + b"\x00" + struct.pack("!IIIII", 1, 2, 3, 4, 60)
    answer = [
        rr(PTR_EXAMPLE, CNAME, b"\x04MAIL" + PTR_EXAMPLE),  # target at 0x29
        rr(b"\xc0\x29", MX, b"\x00\x0a" + PTR_EXAMPLE),
        rr(b"\xc0\x29", A, bytes([192, 0, 2, 1])),
        rr(b"\xc0\x29", AAAA, bytes.fromhex("20010db8000000000000000000000001")),
        rr(b"\xc0\x29", TLSA, tlsa),
        rr(b"\xc0\x29", 46, b"\xff" * 30),  # RRSIG: opaque garbage, skipped
        rr(b"\x05weird\xc0\x29", TXT, b"\x03txt\x00\x02;x"),
        rr(b"\xc0\x29", 13, b"\x01a\x01b"),  # HINFO: skipped
        rr(b"\xc0\x29", A, bytes(4), rdclass=3),  # CHAOS: skipped
    ]
    authority = [rr(PTR_COM, SOA, soa, ttl=900)]
    message = ok(header(an=len(answer), ns=1, ar=1) + QUESTION + b"".join(answer + authority) + OPT)
    assert message.answer == (
        Rr("example.com.", CNAME, 300, "mail.example.com."),
        Rr("mail.example.com.", MX, 300, Mx(10, "example.com.")),
        Rr("mail.example.com.", A, 300, "192.0.2.1"),
        Rr("mail.example.com.", AAAA, 300, "2001:db8::1"),
        Rr("mail.example.com.", TLSA, 300, TlsaRecord(3, 1, 1, bytes(range(32)))),
        Rr("weird.mail.example.com.", TXT, 300, (b"txt", b"", b";x")),
    )
    assert message.authority == (Rr("com.", SOA, 900, Soa("ns.example.com.", ".", 1, 2, 3, 4, 60)),)
    assert (message.edns_payload, message.rcode, message.ede_code) == (1232, 0, None)


@pytest.mark.parametrize(
    ("rdata", "strings"),
    [
        (b"\x00", (b"",)),  # one empty character-string: the zone file's ""
        (b"\x07v=STSv1", (b"v=STSv1",)),
        (b"\x07v=STSv1\x06; id=1", (b"v=STSv1", b"; id=1")),  # joined by the reader
        (b"\x01a\x00\x01b", (b"a", b"", b"b")),
        (b"\x02\xff\x00", (b"\xff\x00",)),  # octets, not text
        (b"\xff" + b"x" * 255, (b"x" * 255,)),  # the longest character-string
        (b"\x03abc" * 100, (b"abc",) * 100),  # RDLENGTH beyond 255
    ],
    ids=repr,
)
def test_txt_rdata_table(rdata: bytes, strings: tuple[bytes, ...]) -> None:
    """RFC 1035 section 3.3.14: TXT rdata is one or more <character-string>s."""
    wire = header(an=1) + QUESTION + rr(PTR_EXAMPLE, TXT, rdata)
    assert ok(wire).answer == (Rr("example.com.", TXT, 300, strings),)
    (theirs,) = dns.message.from_wire(wire).answer[0]
    assert tuple(theirs.strings) == strings


def test_pointer_chains_and_cached_suffixes() -> None:
    # name 2 = "www" + pointer to the question; names 3 and 4 point at name 2
    # (the second time through the cache) and name 5 at a suffix inside it.
    answer = [
        rr(PTR_EXAMPLE, CNAME, b"\x03www" + PTR_EXAMPLE),  # target at offset 41
        rr(b"\xc0\x29", CNAME, b"\xc0\x29"),
        rr(b"\xc0\x29", CNAME, b"\x01x\xc0\x29"),
        rr(PTR_COM, CNAME, b"\x00"),
    ]
    message = ok(header(an=4) + QUESTION + b"".join(answer))
    assert [(r.name, r.rdata) for r in message.answer] == [
        ("example.com.", "www.example.com."),
        ("www.example.com.", "www.example.com."),
        ("www.example.com.", "x.www.example.com."),
        ("com.", "."),
    ]


def test_ttl_with_the_top_bit_set_is_zero() -> None:
    wire = header(an=2) + QUESTION + rr_a(PTR_EXAMPLE, bytes(4), 2**31) + rr_a(PTR_EXAMPLE, b"1234")
    assert [r.ttl for r in ok(wire).answer] == [0, 300]


def test_extended_rcode_and_ede() -> None:
    ede = struct.pack("!HHH", 15, 2 + 8, 6) + b"bad sig\x00"  # a NUL some servers add
    opt = rr(b"\x00", 41, ede, ttl=(1 << 24) | 0x8000, rdclass=1232)  # extended rcode 1
    message = ok(header(ar=1, flags=0x8182) + QUESTION + opt)
    assert message.rcode == 16 + 2
    assert (message.ede_code, message.ede_text) == (6, "bad sig")


def test_one_question_at_most() -> None:
    # dnspython reads several; we ask one and so accept only one back.
    parsed = parse_message(header(qd=2) + QUESTION * 2)
    assert isinstance(parsed, Malformed)
    assert parsed.error == "2 questions"
    assert ok(header(qd=0, flags=0x8181)).question is None  # FORMERR may omit it


def test_flags() -> None:
    message = ok(header(flags=0x87A0) + QUESTION)  # QR AA TC RD RA AD
    assert (message.qr, message.aa, message.tc, message.ad) == (True, True, True, True)
    assert not ok(header(flags=0) + QUESTION).qr


LONG_QUESTION = header(an=1) + LABEL63 * 3 + b"\x00" + struct.pack("!HH", A, 1)  # 193 octets


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"", "shorter than a header"),
        (header()[:11], "shorter than a header"),
        (header() + b"\xc0\x0c\x00\x01\x00\x01", "does not point backwards"),
        (header() + b"\x01a\xc0\x0e\x00\x01\x00\x01", "does not point backwards"),
        (header() + b"\x01a\xc0\x20", "does not point backwards"),
        (header() + b"\x41abc\x00", "unknown label type 0x41"),
        (header() + b"\x80abc\x00", "unknown label type 0x80"),
        (header() + b"\x05ab", "name runs past"),
        (header() + b"\x01a", "name runs past"),
        (header() + b"\x01a\xc0", "truncated compression pointer"),
        (header() + LABEL63 * 4 + b"\x00\x00\x01\x00\x01", "longer than 255"),
        (LONG_QUESTION + rr_a(b"\x3f" + b"b" * 63 + PTR_EXAMPLE, bytes(4)), "longer than 255"),
        (
            header(an=2)
            + LONG_QUESTION[12:]
            + rr_a(PTR_EXAMPLE, bytes(4))  # puts the question name in the cache
            + rr_a(b"\x3f" + b"b" * 63 + PTR_EXAMPLE, bytes(4)),
            "longer than 255",
        ),
        (header() + EXAMPLE + b"\x00", "question runs past"),
        (header(an=1) + QUESTION + b"\xc0\x0c\x00\x0f", "record header runs past"),
        (header(an=1) + QUESTION + rr_a(PTR_EXAMPLE, bytes(4))[:-1], "rdata runs past"),
        (header(an=1) + QUESTION + rr_a(PTR_EXAMPLE, bytes(5)), "A rdata of 5 octets"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, AAAA, bytes(4)), "AAAA rdata of 4"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, TLSA, b"\x03\x01"), "TLSA rdata of 2"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, MX, b"\x00\x01"), "MX rdata of 2"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, MX, b"\x00\x01\xc0\x0c\x00"), "does not fill"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, CNAME, b"\x03www\xc0\x0c")[:-1], "past"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, CNAME, b"\x01a\x00\x00"), "does not fill"),
        (header(ns=1) + QUESTION + rr(PTR_EXAMPLE, SOA, b"\x00\x00" + bytes(19)), "SOA rdata"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, TXT, b""), "TXT rdata without"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, TXT, b"\x03ab"), "runs past its rdata"),
        (header(an=1) + QUESTION + rr(PTR_EXAMPLE, TXT, b"\x01a\x02b"), "runs past its rdata"),
        (header() + QUESTION + b"\x00", "1 octets after the last record"),
        (header(ar=2) + QUESTION + OPT + OPT, "more than one OPT record"),
        (header(ar=1) + QUESTION + rr(b"\x00", 41, b"\x00\x0f\x00"), "truncated EDNS option"),
        (header(ar=1) + QUESTION + rr(b"\x00", 41, b"\x00\x0f\x00\x01\x00"), "shorter than its"),
        (header(ar=1) + QUESTION + rr(b"\x00", 41, b"\x00\x0f\x00\x09\x00"), "past its record"),
        (header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0", "record header runs past"),
    ],
    ids=lambda value: value.replace(" ", "_") if isinstance(value, str) else "wire",
)
def test_malformed(wire: bytes, error: str) -> None:
    parsed = parse_message(wire)
    assert isinstance(parsed, Malformed)
    assert error in parsed.error
    assert parsed.id == (0x1234 if len(wire) >= 2 else None)
    with pytest.raises(Exception):  # noqa: B017, PT011 (the oracle agrees it is broken)
        dns.message.from_wire(wire)


@pytest.mark.parametrize(
    "address",
    [
        "::",
        "::1",
        "1::",
        "2001:db8::1",
        "1:0:0:2::3",  # the longest run of zeros
        "1::2:0:0:3:4",  # of two equal runs, the first
        "1:0:2:3:4:5:6:7",  # a single zero stays
        "1:2:3:4:5:6:7:8",
    ],
)
def test_format_ipv6_table(address: str) -> None:
    assert format_ipv6(ipaddress.IPv6Address(address).packed) == address


@given(st.binary(min_size=16, max_size=16))
def test_format_ipv6_is_rfc5952(packed: bytes) -> None:
    expected = ipaddress.IPv6Address(packed)
    text = format_ipv6(packed)
    assert ipaddress.IPv6Address(text) == expected
    if expected.ipv4_mapped is None:  # Python 3.13 prints those in dotted form
        assert text == expected.compressed


# --- properties against dnspython --------------------------------------------------

IN = dns.rdataclass.IN
labels = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyzABCZ0123456789-_", min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=1, max_size=6),
)
names = st.lists(labels, max_size=4).map(lambda ls: dns.name.Name([*ls, b""]))


@st.composite
def rdatas(draw: st.DrawFn, name: st.SearchStrategy[dns.name.Name]) -> dns.rdata.Rdata:
    kind = draw(st.sampled_from(["A", "AAAA", "MX", "TLSA", "CNAME", "SOA", "RRSIG", "TXT"]))
    if kind == "A":
        text = str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1))))
    elif kind == "AAAA":
        text = str(ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1))))
    elif kind == "MX":
        text = f"{draw(st.integers(0, 65535))} {draw(name)}"
    elif kind == "TLSA":
        # dnspython insists on the digest length of matching types 1 and 2.
        mtype = draw(st.sampled_from([0, 1, 2, 7]))
        size = {1: 32, 2: 64}.get(mtype)
        data = draw(st.binary(min_size=size or 1, max_size=size or 70)).hex()
        text = f"{draw(st.integers(0, 255))} {draw(st.integers(0, 255))} {mtype} {data}"
    elif kind == "CNAME":
        text = str(draw(name))
    elif kind == "SOA":
        numbers = " ".join(str(draw(st.integers(0, 2**32 - 1))) for _ in range(5))
        text = f"{draw(name)} {draw(name)} {numbers}"
    elif kind == "RRSIG":
        tag = draw(st.integers(0, 65535))
        text = f"MX 13 2 300 20300101000000 20200101000000 {tag} {draw(name)} AAAA"
    else:
        strings = draw(st.lists(st.text("xyz ;=", max_size=20), min_size=1, max_size=3))
        text = " ".join(f'"{string}"' for string in strings)
    return dns.rdata.from_text(IN, kind, text)


@st.composite
def dns_messages(draw: st.DrawFn) -> dns.message.Message:
    # A small pool of names, and children of them, so compression is used.
    pool = draw(st.lists(names, min_size=1, max_size=3))
    base = st.sampled_from(pool)
    child = st.tuples(labels, base).map(lambda p: dns.name.Name([p[0], *p[1].labels]))
    name = st.one_of(base, child)
    msg = dns.message.Message(id=draw(st.integers(0, 0xFFFF)))
    if draw(st.booleans()):
        options: list[dns.edns.Option] = []
        if draw(st.booleans()):
            code = dns.edns.EDECode.make(draw(st.integers(0, 30)))
            # Any text UTF-8 can carry (no surrogates), without the NUL that
            # both parsers drop from the end.
            utf8 = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
            text = draw(st.text(utf8, max_size=20))
            options.append(dns.edns.EDEOption(code, text or None))
        msg.use_edns(0, dns.flags.DO, draw(st.integers(512, 4096)), options=options)
        msg.set_rcode(dns.rcode.Rcode.make(draw(st.sampled_from([0, 2, 3, 5, 16]))))
    else:
        msg.set_rcode(dns.rcode.Rcode.make(draw(st.integers(0, 5))))
    msg.flags |= draw(st.integers(0, 0xFFFF)) & 0x87B0  # QR AA TC RD RA AD CD, not opcode
    qtype = dns.rdatatype.RdataType.make(draw(st.sampled_from(sorted(KEPT))))
    msg.question.append(dns.rrset.RRset(draw(name), IN, qtype))
    for section in (msg.answer, msg.authority, msg.additional):
        for _ in range(draw(st.integers(0, 5))):
            rdata = draw(rdatas(name))
            rrset = msg.find_rrset(
                section, draw(name), IN, rdata.rdtype, rdata.covers(), create=True
            )
            rrset.add(rdata, draw(st.integers(0, 2**31 - 1)))
    return msg


def canonical(rdtype: int, rdata: Any) -> Any:
    """Our rdata and dnspython's, in one comparable shape."""
    if isinstance(rdata, dns.rdata.Rdata):
        theirs: Any = rdata
        if rdtype == A:
            return theirs.address
        if rdtype == AAAA:
            return ipaddress.IPv6Address(theirs.address)
        if rdtype == MX:
            return (theirs.preference, theirs.exchange.to_text().lower())
        if rdtype == TLSA:
            return (theirs.usage, theirs.selector, theirs.mtype, theirs.cert)
        if rdtype == CNAME:
            return theirs.target.to_text().lower()
        if rdtype == TXT:
            return tuple(theirs.strings)
        names = (theirs.mname.to_text().lower(), theirs.rname.to_text().lower())
        return (*names, theirs.serial, theirs.refresh, theirs.retry, theirs.expire, theirs.minimum)
    if rdtype == AAAA:
        return ipaddress.IPv6Address(rdata)
    if isinstance(rdata, str) or type(rdata) is tuple:  # TlsaRecord is a NamedTuple
        return rdata
    return tuple(getattr(rdata, field) for field in rdata._fields)


def oracle_records(section: list[dns.rrset.RRset]) -> list[tuple[Any, ...]]:
    return [
        (rrset.name.to_text().lower(), int(rrset.rdtype), rrset.ttl, canonical(rrset.rdtype, rd))
        for rrset in section
        if rrset.rdclass == IN and rrset.rdtype in KEPT
        for rd in rrset
    ]


def our_records(section: tuple[Rr, ...]) -> list[tuple[Any, ...]]:
    return [(r.name, r.rdtype, r.ttl, canonical(r.rdtype, r.rdata)) for r in section]


def assert_same_records(ours: tuple[Rr, ...], theirs: list[dns.rrset.RRset], exact: bool) -> None:
    mine, oracle = our_records(ours), oracle_records(theirs)
    if exact:
        assert Counter(mine) == Counter(oracle)
        return
    # dnspython merges the records of one RRset (lowest TTL, duplicates
    # dropped), which a damaged message may have split.
    assert {r[:2] + r[3:] for r in mine} == {r[:2] + r[3:] for r in oracle}
    lowest: dict[tuple[Any, ...], int] = {}
    for record in mine:
        lowest[record[:2]] = min(record[2], lowest.get(record[:2], record[2]))
    assert lowest == {r[:2]: r[2] for r in oracle}


def assert_same_as_oracle(ours: Message, theirs: dns.message.Message, exact: bool = True) -> None:
    assert (ours.id, ours.flags, ours.rcode) == (theirs.id, int(theirs.flags), theirs.rcode())
    if theirs.question:
        question = theirs.question[0]
        asked = (question.name.to_text().lower(), question.rdtype, question.rdclass)
        assert ours.question is not None
        assert (ours.question.name, ours.question.rdtype, ours.question.rdclass) == asked
    else:
        assert ours.question is None
    assert_same_records(ours.answer, theirs.answer, exact)
    assert_same_records(ours.authority, theirs.authority, exact)
    assert ours.edns_payload == (theirs.payload if theirs.edns >= 0 else None)
    errors = theirs.extended_errors()
    assert ours.ede_code == (errors[0].code if errors else None)
    assert ours.ede_text == ((errors[0].text or "") if errors else "")


# Building messages with dnspython is slow: the default runs 100 examples
# each, the slow-marked runs take more than a few seconds to search deeper.
oracle = settings(suppress_health_check=[HealthCheck.too_slow])
deep = settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])


def check_same_records_as_dnspython(msg: dns.message.Message) -> None:
    wire = msg.to_wire(max_size=65535)
    ours = ok(wire)
    assert_same_as_oracle(ours, dns.message.from_wire(wire))
    # The client's fast path: the question's name is given, not decoded.
    if ours.question is not None and is_plain_name(ours.question.name):
        assert parse_message(wire, known_name=ours.question.name) == ours


@oracle
@given(dns_messages())
def test_same_records_as_dnspython(msg: dns.message.Message) -> None:
    check_same_records_as_dnspython(msg)


@pytest.mark.slow
@deep
@given(dns_messages())
def test_same_records_as_dnspython_deep(msg: dns.message.Message) -> None:
    check_same_records_as_dnspython(msg)


def test_known_name_steps_over_the_question() -> None:
    query = dns.message.make_query("mx.example.", "A", want_dnssec=True)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("mx.example.", 60, "IN", "A", "192.0.2.1"))
    wire = reply.to_wire()
    # The given text is trusted (the client compared the octets): owners that
    # point at the question take it.
    fast = ok_known(wire, "mx.example.")
    assert fast == ok(wire)
    assert fast.answer[0].name == "mx.example."


def ok_known(wire: bytes, name: str) -> Message:
    parsed = parse_message(wire, known_name=name)
    assert isinstance(parsed, Message), parsed
    return parsed


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(wire: bytes) -> None:
    assert isinstance(parse_message(wire), Message | Malformed)


@given(st.binary(min_size=12, max_size=12), st.binary(max_size=300))
def test_arbitrary_bytes_after_a_plausible_header_never_raise(head: bytes, body: bytes) -> None:
    # Small section counts, so the walker gets past the header into the body.
    counts = struct.pack("!HHHH", *(b % 4 for b in head[4:8]))
    assert isinstance(parse_message(head[:4] + counts + body), Message | Malformed)


edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 2**16), st.binary(max_size=3)
    ),
    min_size=1,
    max_size=4,
)


def check_damaged_message(msg: dns.message.Message, damage: list[tuple[str, int, bytes]]) -> None:
    wire = bytearray(msg.to_wire(max_size=65535))
    for kind, where, data in damage:
        at = where % (len(wire) + 1)
        if kind == "flip" and at < len(wire):
            wire[at] ^= data[0] if data else 0xFF
        elif kind == "cut":
            del wire[at:]
        else:
            wire[at:at] = data
    parsed = parse_message(bytes(wire))
    try:
        theirs = dns.message.from_wire(bytes(wire))
    except Exception:
        return  # both may reject it; we only promise not to raise
    if theirs.opcode() != dns.opcode.QUERY:
        return  # dnspython reads UPDATE sections differently
    if len(theirs.question) > 1:
        assert isinstance(parsed, Malformed)  # we ask one question and expect one back
        return
    assert isinstance(parsed, Message), parsed
    assert_same_as_oracle(parsed, theirs, exact=False)


@oracle
@given(dns_messages(), edits)
def test_damaged_messages_never_raise_and_agree_with_dnspython(
    msg: dns.message.Message, damage: list[tuple[str, int, bytes]]
) -> None:
    check_damaged_message(msg, damage)


@pytest.mark.slow
@deep
@given(dns_messages(), edits)
def test_damaged_messages_never_raise_and_agree_with_dnspython_deep(
    msg: dns.message.Message, damage: list[tuple[str, int, bytes]]
) -> None:
    check_damaged_message(msg, damage)
