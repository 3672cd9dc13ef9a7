"""What an answer means (scanner.resolve.answer), the value classes, and the
compiled codec against its own source."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import dns.message
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner import native
from scanner.resolve.answer import DnsAnswer, answer_from_message, dnssec_status
from scanner.resolve.message import Malformed, Message, Mx, Question, Rr, Soa
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord
from tests import codec
from tests.unit.test_resolve_wire import dns_messages, oracle

MX, A, TLSA, CNAME, SOA, TXT = 15, 1, 52, 5, 6, 16


# --- answers: from a message to a DnsAnswer ----------------------------------------


def message(
    answer: tuple[Rr, ...] = (), authority: tuple[Rr, ...] = (), rcode: int = 0, ad: bool = False
) -> Message:
    flags = 0x8180 | (0x20 if ad else 0) | (rcode & 0xF)
    return Message(1, flags, rcode, Question("a.example.", MX, 1), answer, authority)


SOA_RR = Rr("example.", SOA, 3600, Soa("ns.example.", "host.example.", 1, 2, 3, 4, 600))
MX_RR = Rr("a.example.", MX, 300, Mx(10, "mx.example."))
LOOP = (Rr("a.example.", CNAME, 50, "b.example."), Rr("b.example.", CNAME, 50, "a.example."))
CHAIN = (
    Rr("a.example.", CNAME, 100, "b.example."),
    Rr("b.example.", CNAME, 900, "c.example."),
    Rr("c.example.", MX, 300, Mx(0, ".")),
    MX_RR,  # owned by the alias: not part of the answer
)


@pytest.mark.parametrize(
    ("msg", "outcome", "records", "cnames", "ttl", "error"),
    [
        (message((MX_RR,)), DnsOutcome.ANSWER, (Mx(10, "mx.example."),), (), 300, ""),
        (message(CHAIN), DnsOutcome.ANSWER, (Mx(0, "."),), ("b.example.", "c.example."), 100, ""),
        (message(CHAIN[:1], (SOA_RR,), 3), DnsOutcome.NXDOMAIN, (), ("b.example.",), 100, ""),
        (message(LOOP), DnsOutcome.NODATA, (), ("b.example.",), None, "CNAME loop at b.example."),
        (message((), (SOA_RR,)), DnsOutcome.NODATA, (), (), 600, ""),
        (message((), (Rr(SOA_RR.name, SOA, 60, SOA_RR.rdata),)), DnsOutcome.NODATA, (), (), 60, ""),
        (message((MX_RR,), rcode=2), DnsOutcome.SERVFAIL, (MX_RR.rdata,), (), 300, ""),
        (message(rcode=5), DnsOutcome.REFUSED, (), (), None, ""),
        (message(rcode=1), DnsOutcome.REFUSED, (), (), None, "rcode FORMERR"),
        (message(rcode=16), DnsOutcome.REFUSED, (), (), None, "rcode BADVERS"),
        (message(rcode=23), DnsOutcome.REFUSED, (), (), None, "rcode 23"),
    ],
)
def test_answer_from_message(
    msg: Message,
    outcome: DnsOutcome,
    records: tuple[Any, ...],
    cnames: tuple[str, ...],
    ttl: int | None,
    error: str,
) -> None:
    answer = answer_from_message(msg, "a.example.", MX, server="s", attempts=2, elapsed=0.5)
    assert (answer.outcome, answer.records, answer.cnames) == (outcome, records, cnames)
    assert (answer.ttl, answer.error) == (ttl, error)
    assert (answer.rcode, answer.server, answer.attempts, answer.elapsed) == (
        msg.rcode,
        "s",
        2,
        0.5,
    )
    assert answer.canonical_name == (cnames[-1] if cnames else "a.example.")


def test_cname_chain_is_bounded() -> None:
    chain = tuple(Rr(f"{i}.example.", CNAME, 60, f"{i + 1}.example.") for i in range(40))
    answer = answer_from_message(message(chain), "0.example.", A)
    assert len(answer.cnames) == 16
    assert answer.outcome is DnsOutcome.NODATA
    assert answer.error == "CNAME chain longer than 16"


def test_cname_query_does_not_follow_the_chain() -> None:
    answer = answer_from_message(message(CHAIN), "a.example.", CNAME)
    assert (answer.records, answer.cnames) == (("b.example.",), ())


def test_typed_views() -> None:
    answer = DnsAnswer(
        "a.",
        A,
        DnsOutcome.ANSWER,
        records=(Mx(1, "b."), "192.0.2.1", TlsaRecord(3, 1, 1, b"x"), (b"v=", b"1"), (b"",)),
    )
    assert answer.mx == (Mx(1, "b."),)
    assert answer.addresses == ("192.0.2.1",)
    assert answer.tlsa == (TlsaRecord(3, 1, 1, b"x"),)
    assert answer.txt == ((b"v=", b"1"), (b"",))


def test_txt_through_a_cname() -> None:
    """The records of the chain's end, each its strings (a TxtRRset)."""
    chain = (
        Rr("_mta-sts.a.example.", CNAME, 60, "_mta-sts.provider.example."),
        Rr("_mta-sts.provider.example.", TXT, 300, (b"v=STSv1; ", b"id=1")),
        Rr("_mta-sts.provider.example.", TXT, 300, (b"other",)),
        Rr("_mta-sts.a.example.", TXT, 300, (b"not the alias's",)),
    )
    answer = answer_from_message(message(chain), "_mta-sts.a.example.", TXT)
    assert answer.outcome is DnsOutcome.ANSWER
    assert answer.cnames == ("_mta-sts.provider.example.",)
    assert answer.txt == ((b"v=STSv1; ", b"id=1"), (b"other",))
    assert answer.ttl == 60


def test_values_compare_by_type_and_fields() -> None:
    mx = Mx(10, "mx.example.")
    assert mx == Mx(10, "mx.example.")
    assert hash(mx) == hash(Mx(10, "mx.example."))
    assert len({mx, Mx(10, "mx.example."), Mx(20, "mx.example.")}) == 2
    assert mx != Mx(10, "other.example.")
    # Not a tuple any more, and not equal to another type with equal fields.
    assert mx != (10, "mx.example.")
    assert mx != Malformed(10, "mx.example.")
    assert repr(mx) == "Mx(preference=10, exchange='mx.example.')"
    assert sorted([Mx(20, "a."), mx, Mx(10, "a.")]) == [Mx(10, "a."), mx, Mx(20, "a.")]
    answer = DnsAnswer("a.", A, DnsOutcome.TIMEOUT, error="no answer")
    assert answer == DnsAnswer("a.", A, DnsOutcome.TIMEOUT, error="no answer")
    assert answer != DnsAnswer("a.", A, DnsOutcome.TIMEOUT, error="no answer", attempts=1)


def test_value_fields_are_the_constructor_parameters() -> None:
    # _fields drives equality, hash and repr; a field added to __init__ but
    # not there would silently drop out of all three. The source build's
    # classes, because inspect cannot read a compiled constructor.
    message_source = native.source_module("scanner.resolve.message")
    base = message_source.Value
    values: list[Any] = [
        c
        for module in (message_source, native.source_module("scanner.resolve.answer"))
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, base)
    ]
    values = sorted(set(values) - {base}, key=lambda c: c.__name__)
    assert {c.__name__ for c in values} >= {"Question", "Mx", "Soa", "Rr", "DnsAnswer"}
    for cls in values:
        assert cls._fields == tuple(inspect.signature(cls).parameters), cls.__name__


@pytest.mark.skipif(not codec.compiled(), reason="read-only once compiled")
def test_compiled_values_are_read_only() -> None:
    answer = DnsAnswer("a.", A, DnsOutcome.ANSWER)
    with pytest.raises(AttributeError):
        answer.outcome = DnsOutcome.NXDOMAIN  # type: ignore[misc]
    assert answer.outcome is DnsOutcome.ANSWER


@pytest.mark.parametrize(
    ("outcome", "ad", "ede", "status"),
    [
        (DnsOutcome.ANSWER, True, None, DnssecStatus.SECURE),
        (DnsOutcome.NODATA, True, None, DnssecStatus.SECURE),
        (DnsOutcome.NXDOMAIN, True, None, DnssecStatus.SECURE),
        (DnsOutcome.ANSWER, False, None, DnssecStatus.INSECURE),
        (DnsOutcome.NXDOMAIN, False, None, DnssecStatus.INSECURE),
        (DnsOutcome.SERVFAIL, False, 6, DnssecStatus.BOGUS),
        (DnsOutcome.SERVFAIL, False, 7, DnssecStatus.BOGUS),
        (DnsOutcome.SERVFAIL, False, 12, DnssecStatus.BOGUS),
        (DnsOutcome.SERVFAIL, False, 22, DnssecStatus.INDETERMINATE),  # no reachable authority
        (DnsOutcome.SERVFAIL, False, None, DnssecStatus.INDETERMINATE),
        (DnsOutcome.TIMEOUT, False, None, DnssecStatus.INDETERMINATE),
        (DnsOutcome.REFUSED, True, None, DnssecStatus.INDETERMINATE),
        (DnsOutcome.TRUNCATED, False, None, DnssecStatus.INDETERMINATE),
        (DnsOutcome.MALFORMED, False, 6, DnssecStatus.INDETERMINATE),
    ],
)
def test_dnssec_status(
    outcome: DnsOutcome, ad: bool, ede: int | None, status: DnssecStatus
) -> None:
    assert dnssec_status(outcome, ad, ede) is status
    assert DnsAnswer("a.", A, outcome, ad=ad, ede_code=ede).dnssec is status


# --- the compiled build (make native) against its own source ----------------

needs_compiled = pytest.mark.skipif(
    not codec.compiled(), reason="the codec runs from source: no compiled build (make native)"
)


def reading(build: SimpleNamespace, data: bytes) -> tuple[str, str]:
    """What a build makes of a reply, as text (the two builds' classes differ)."""
    parsed = build.parse_message(data)
    if isinstance(parsed, build.Malformed):
        return repr(parsed), ""
    question = parsed.question
    qname, qtype = (question.name, question.rdtype) if question else ("example.", A)
    return repr(parsed), repr(build.answer_from_message(parsed, qname, qtype, attempts=2))


def check_builds_agree(data: bytes) -> None:
    shipped, source = codec.shipped(), codec.from_source()
    assert source.Message is not shipped.Message
    assert reading(shipped, data) == reading(source, data)


@needs_compiled
@oracle
@given(dns_messages(), st.integers(min_value=0))
def test_compiled_build_reads_messages_as_its_source_does(
    msg: dns.message.Message, cut: int
) -> None:
    data = msg.to_wire(max_size=65535)
    check_builds_agree(data)
    check_builds_agree(data[: cut % (len(data) + 1)])  # truncated


@needs_compiled
@given(st.binary(max_size=600))
def test_compiled_build_reads_arbitrary_bytes_as_its_source_does(data: bytes) -> None:
    check_builds_agree(data)


@needs_compiled
@pytest.mark.parametrize("name", ["example.", "_25._tcp.mx.example.", "a\\.b.example", "."])
def test_compiled_build_writes_queries_as_its_source_does(name: str) -> None:
    assert codec.shipped().build_query(7, name, TLSA) == codec.from_source().build_query(
        7, name, TLSA
    )
