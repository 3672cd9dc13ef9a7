"""Fuzz harnesses: one function per parser that reads remote or user bytes.

Each ``fuzz_<target>(data)`` takes arbitrary bytes and asserts the parser's
contract, not only that it does not crash: it returns its documented outcome
type or raises only its documented error class, round-trips where there is
an encoder, and keeps its output bounded. Any other exception (IndexError,
struct.error, UnicodeDecodeError, an AssertionError from a broken contract)
is a finding. The same functions run under atheris (``make fuzz``,
tests/fuzz/run.py) and over the corpus plus seeded mutations in the normal
test suite (tests/fuzz/test_fuzz.py); they need nothing from atheris.

The DNS codec is compiled by mypyc (scanner.native): its harnesses run the
shipped extension and the source side by side (``native.source_module``) and
require the same result from both, so a fuzzer instrumenting the source
(coverage feedback) also exercises the build that ships.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import itertools
import string
import struct
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from scanner import tlsa
from scanner.handshake import smtp
from scanner.handshake.exclude import Exclusions, parse_exclusions
from scanner.ingest import reader as ingest_reader
from scanner.ingest.normalise import Normalised, normalise
from scanner.match import certificates, dane, der, outcome, records
from scanner.match.batch import CertPool
from scanner.resolve import dnsname
from scanner.resolve.message import Message, RdType
from scanner.status import DaneVerdict
from tests.codec import builds

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


# The codec as it ships and from source (when compiled), built once.
codec_builds = functools.cache(builds)


# --- DNS codec -------------------------------------------------------------


def _names_of(message: Message) -> list[str]:
    names = [message.question.name] if message.question is not None else []
    for rr in (*message.answer, *message.authority):
        names.append(rr.name)
        rdata = rr.rdata
        if isinstance(rdata, str) and rr.rdtype == RdType.CNAME:
            names.append(rdata)
        elif type(rdata).__name__ == "Mx":
            names.append(rdata.exchange)  # type: ignore[union-attr]
        elif type(rdata).__name__ == "Soa":
            names += (rdata.mname, rdata.rname)  # type: ignore[union-attr]
    return names


def _check_name_round_trip(codec: SimpleNamespace, name: str) -> None:
    """A decoded name encodes again (at most 255 octets) and decodes to itself."""
    assert name.endswith("."), name
    assert name == name.lower(), name
    encoded = codec.encode_name(name)
    assert len(encoded) <= 255
    again = codec.parse_message(codec.build_query(0, name, 1))
    assert isinstance(again, codec.Message), again
    assert again.question.name == name, (again.question.name, name)


def _check_message(codec: SimpleNamespace, data: bytes) -> str:
    result = codec.parse_message(data)
    if isinstance(result, codec.Malformed):
        assert isinstance(result.error, str)
        assert result.error
        expected_id = struct.unpack_from("!H", data)[0] if len(data) >= 2 else None
        assert result.id == expected_id
        return repr(result)
    assert isinstance(result, codec.Message), type(result)
    qid, flags, _, ancount, nscount, _ = struct.unpack_from("!6H", data)
    assert (result.id, result.flags) == (qid, flags)
    assert 0 <= result.rcode <= 0xFFF
    # Bounded: every record kept is one of the header's and at least 11 octets.
    assert len(result.answer) <= ancount
    assert len(result.authority) <= nscount
    assert 11 * (len(result.answer) + len(result.authority)) <= len(data)
    for rr in (*result.answer, *result.authority):
        assert rr.rdtype in (1, 5, 6, 15, 28, 52), rr
        assert 0 <= rr.ttl <= 0x7FFFFFFF
        if rr.rdtype == 1:
            ipaddress.IPv4Address(rr.rdata)
        elif rr.rdtype == 28:
            assert str(ipaddress.IPv6Address(rr.rdata)) == rr.rdata
    for name in _names_of(result):
        _check_name_round_trip(codec, name)
    question = result.question
    if question is not None and codec.is_plain_name(question.name):
        # What the client does when the question's octets equal its query's
        # (no compression pointer there): the same message, not decoded twice.
        plain = codec.encode_name(question.name)
        if data[12 : 12 + len(plain)].lower() == plain:
            assert codec.parse_message(data, known_name=question.name) == result
    if question is not None:
        answer = codec.answer_from_message(result, question.name, question.rdtype)
        assert len(answer.cnames) <= codec.MAX_CNAME_CHAIN
        assert answer.ttl is None or 0 <= answer.ttl <= 0x7FFFFFFF
        assert len(answer.records) <= len(result.answer)
        answer.dnssec  # noqa: B018 (the property must not raise)
    return repr(result)


def fuzz_dns_message(data: bytes) -> None:
    """parse_message: a Message or a Malformed, never an exception; both builds agree."""
    shown = {_check_message(codec, data) for codec in codec_builds()}
    assert len(shown) == 1, shown


def fuzz_dns_name(data: bytes) -> None:
    """encode_name / build_query: ValueError or a query that parses back to the name."""
    if len(data) < 3:
        return
    qid = data[0] << 8 | data[1]
    rdtype = data[2]
    name = data[3:].decode("utf-8", "replace")
    outcomes = set()
    for codec in codec_builds():
        try:
            query = codec.build_query(qid, name, rdtype)
        except ValueError as exc:
            outcomes.add(f"ValueError {exc}")
            continue
        parsed = codec.parse_message(query)
        assert isinstance(parsed, codec.Message), parsed
        assert parsed.id == qid
        assert parsed.question.rdtype == rdtype
        assert parsed.edns_payload == codec.EDNS_PAYLOAD
        decoded = parsed.question.name
        # ASCII case folds on the way in (RFC 4343), nothing else changes.
        assert codec.encode_name(decoded) == codec.encode_name(name).lower()
        outcomes.add(decoded)
    assert len(outcomes) == 1, outcomes


# --- SMTP ------------------------------------------------------------------


def _chunks(data: bytes) -> list[bytes]:
    """The first octet picks chunk sizes, as a network splits a stream."""
    if not data:
        return []
    step = data[0] % 17 + 1
    body = data[1:]
    return [body[i : i + step] for i in range(0, len(body), step)]


def _replies(reader: smtp.ReplyReader, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            item = reader.next_reply()
            if item is None:
                break
            out.append(item)
            if isinstance(item, smtp.ReplyError):
                return out
            assert isinstance(item, smtp.Reply)
            assert 200 <= item.code <= 559
            assert item.code % 100 <= 59
            assert 1 <= len(item.lines) <= smtp.MAX_REPLY_LINES
        # Bounded memory: the line bound plus one received chunk.
        assert reader.buffered <= smtp.MAX_REPLY_BYTES + smtp.MAX_LINE + len(chunk)
    return out


_COMMANDS = (b"EHLO fuzz.example\r\n", b"HELO fuzz.example\r\n", b"STARTTLS\r\n", b"QUIT\r\n")


def fuzz_smtp(data: bytes) -> None:
    """ReplyReader and SmtpClient: replies or one error, one Done, no exception."""
    chunks = _chunks(data)
    replies = _replies(smtp.ReplyReader(), chunks)
    # How the stream is cut does not change the replies.
    whole = _replies(smtp.ReplyReader(), [b"".join(chunks)] if chunks else [])
    assert [r for r in replies if isinstance(r, smtp.Reply)] == [
        r for r in whole if isinstance(r, smtp.Reply)
    ]
    assert any(isinstance(r, smtp.ReplyError) for r in replies) == any(
        isinstance(r, smtp.ReplyError) for r in whole
    )

    client = smtp.SmtpClient("fuzz.example")
    events: list[smtp.Event] = []
    for chunk in chunks:
        new = client.receive_data(chunk)
        events += new
        if any(isinstance(e, smtp.ReadyForTls) for e in new):
            events += client.tls_established()
    events += client.receive_eof()
    done = [e for e in events if isinstance(e, smtp.Done)]
    assert len(done) == 1, events
    assert client.outcome == done[0]
    assert client.phase is smtp.Phase.CLOSED
    assert isinstance(done[0].status, smtp.SmtpStatus)
    sent = [e.data for e in events if isinstance(e, smtp.Send)]
    assert all(line in _COMMANDS for line in sent), sent
    # Nothing but QUIT after the outcome, and nothing at all past STARTTLS,
    # EHLO and QUIT (RFC 7672 section 2.2).
    after = events[events.index(done[0]) :]
    assert not any(isinstance(e, smtp.Send) for e in after)
    assert len(sent) <= 5


# --- DER, PEM and certificates ----------------------------------------------


def fuzz_der(data: bytes) -> None:
    """spki slices or says why; cert_info reads or returns None; PEM round-trips."""
    sliced = der.spki(data)
    if isinstance(sliced, bytes):
        assert sliced[:1] == b"\x30"
        assert sliced in data
        assert len(sliced) < len(data)
    else:
        assert isinstance(sliced, der.DerError)
    info = certificates.cert_info(data)
    assert info is None or isinstance(info, certificates.CertInfo)
    if info is not None and isinstance(sliced, bytes):
        # The walker's slice is what the certificate itself says its key is.
        assert sliced in info.cert.tbs_certificate_bytes
    try:
        blocks = der.pem_certificates(data)
    except ValueError:
        pass
    else:
        assert all(isinstance(b, bytes) and len(b) < len(data) for b in blocks)
    if data:
        armour = base64.encodebytes(data).decode("ascii")
        pem = f"-----BEGIN CERTIFICATE-----\n{armour}-----END CERTIFICATE-----\n"
        assert der.pem_certificates(pem.encode()) == [data]


# --- TLSA records ------------------------------------------------------------


@functools.cache
def _chain() -> tuple[bytes, ...]:
    """A leaf and its CA from the test PKI (tests/fuzz/make_corpus.py wrote them)."""
    return tuple(der.pem_certificates((HERE / "chain.pem").read_bytes()))


_NOW = datetime(2025, 6, 1, tzinfo=UTC)
_POOL = CertPool(max_certificates=1000)


def _tlsa_message(codec: SimpleNamespace, rdata: bytes) -> bytes:
    header = struct.pack("!6H", 0x1234, 0x8180, 1, 1, 0, 0)
    question = codec.encode_name("_25._tcp.mx.example.") + struct.pack("!HH", 52, 1)
    record = b"\xc0\x0c" + struct.pack("!HHIH", 52, 1, 300, len(rdata)) + rdata
    return header + question + record


def fuzz_tlsa(data: bytes) -> None:
    """TLSA from text (scan verify --tlsa) and from the wire, then matched."""
    text = data.decode("utf-8", "replace")
    parsed = tlsa.parse_tlsa(text)
    if isinstance(parsed, tlsa.TlsaRecord):
        assert all(0 <= v <= 255 for v in (parsed.usage, parsed.selector, parsed.mtype))
        assert tlsa.parse_tlsa(parsed.to_text()) == parsed
        assert len(parsed.data) <= len(text) // 2
    else:
        assert isinstance(parsed, tlsa.TlsaSyntaxError)
        assert parsed.message
        str(parsed)
    # The same bytes as the RDATA of a TLSA record in a DNS answer.
    for codec in codec_builds():
        message = codec.parse_message(_tlsa_message(codec, data))
        if len(data) < 3:
            assert isinstance(message, codec.Malformed), message
            continue
        assert isinstance(message, codec.Message), message
        (rr,) = message.answer
        assert (rr.rdata.usage, rr.rdata.selector, rr.rdata.mtype) == tuple(data[:3])
        assert rr.rdata.data == data[3:]
    if len(data) < 3:
        return
    record = tlsa.TlsaRecord(data[0] % 4, data[1] % 3, data[2] % 3, data[3:])
    for candidate in (record, tlsa.TlsaRecord(data[0], data[1], data[2], data[3:])):
        problem = records.record_problem(candidate)
        assert problem is None or isinstance(problem, str)
        candidate.label()
    result = dane.match_chain(_chain(), [record], ["example.com"], _NOW, _POOL)
    assert isinstance(result, outcome.MatchResult)
    assert isinstance(result.verdict, DaneVerdict)


# --- input names ---------------------------------------------------------------

_LDH = frozenset(string.ascii_lowercase + string.digits + "-.")


def _check_normalised(result: Normalised) -> None:
    assert (result.domain is None) != (result.error is None), result
    if result.domain is None:
        assert result.error
        return
    name = result.domain
    assert set(name) <= _LDH, name
    assert len(name) <= 253
    assert not name.endswith("."), name
    assert normalise(name) == result  # idempotent
    dnsname.encode_name(name)  # and queryable


def fuzz_normalise(data: bytes) -> None:
    """normalise: a queryable LDH name or a reason, never an exception."""
    # The reader decodes with errors="replace": no surrogates reach normalise.
    _check_normalised(normalise(data.decode("utf-8", "replace")))


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="danescan-fuzz-"))


def fuzz_reader(data: bytes) -> None:
    """read_names over a file of these bytes: InputNames, or InputError only."""
    path = _scratch() / "input"
    path.write_bytes(data)
    names: list[ingest_reader.InputName] = []
    try:
        for item in ingest_reader.read_names(str(path)):
            names.append(item)
            # Bounded: a name per line, no line longer than MAX_LINE.
            assert len(names) <= 10 * len(data) + 10
    except ingest_reader.InputError:
        pass  # the documented error: the input as a whole cannot be read
    numbers = [item.line for item in names]
    assert numbers == sorted(set(numbers))
    assert all(n >= 1 for n in numbers)
    for item in names:
        assert len(item.raw) <= ingest_reader.MAX_LINE
        assert normalise(item.raw) == item.result
        _check_normalised(item.result)


# --- exclusion files -------------------------------------------------------------


def fuzz_exclude(data: bytes) -> None:
    """parse_exclusions: entries and reported bad lines, never an exception."""
    lines = data.decode("utf-8", "replace").splitlines()
    parsed = parse_exclusions(lines)
    assert isinstance(parsed.exclusions, Exclusions)
    assert len(parsed.bad_lines) <= len(lines)
    assert all(1 <= bad.line_no <= len(lines) and bad.reason for bad in parsed.bad_lines)
    exclusions = parsed.exclusions
    for ranges in (exclusions.v4, exclusions.v6):
        bounds = list(zip(ranges.starts, ranges.ends, strict=True))
        assert all(start <= end for start, end in bounds)
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(bounds))
    for domain in exclusions.domains:
        # An entry read back from its own normal form is the same entry.
        again = parse_exclusions([domain])
        assert not again.bad_lines
        assert again.exclusions.domains == {domain}
        assert exclusions.name_excluded(domain)
        assert exclusions.name_excluded("x." + domain)
        assert exclusions.is_excluded("192.0.2.1", [domain + "."])
    for start, end in zip(exclusions.v4.starts, exclusions.v4.ends, strict=True):
        assert exclusions.address_excluded(ipaddress.IPv4Address(start))
        assert exclusions.address_excluded(ipaddress.IPv4Address(end))
    for start, end in zip(exclusions.v6.starts, exclusions.v6.ends, strict=True):
        assert exclusions.address_excluded(ipaddress.IPv6Address(start))
        assert exclusions.address_excluded(ipaddress.IPv6Address(end))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "dns_message": fuzz_dns_message,
    "dns_name": fuzz_dns_name,
    "smtp": fuzz_smtp,
    "der": fuzz_der,
    "tlsa": fuzz_tlsa,
    "normalise": fuzz_normalise,
    "reader": fuzz_reader,
    "exclude": fuzz_exclude,
}
