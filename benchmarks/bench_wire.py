"""Micro-benchmark: DNS query build + answer parse, our codec vs dnspython.

Both codecs handle the same messages in the same run: realistic answers of a
validating resolver (DO set, so RRSIGs ride along) built once by dnspython.
Per message and codec it reports microseconds per query built plus answer
parsed, best of several repeats (the least disturbed run). Ours runs twice
where `make native` has compiled it: the mypyc build and wire.py's source.

    .venv/bin/python benchmarks/bench_wire.py [--number 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.version

from scanner.resolve.answer import DnsAnswer
from scanner.status import DnsOutcome

# tests.codec loads the codec both compiled and from source; the repository
# root is not on the path of a script run as `python benchmarks/bench_wire.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import codec as dns_codec

RRSIG = "{type} 13 3 300 20300101000000 20200101000000 34505 example.com. " + "A" * 88


def answer(name: str, rdtype: str, *records: str, rcode: int = 0) -> tuple[str, int, bytes]:
    """A response to (name, rdtype) with the records ("owner ttl type rdata")."""
    query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AD
    reply.set_rcode(dns.rcode.Rcode.make(rcode))
    for text in records:
        owner, ttl, kind, rdata = text.split(maxsplit=3)
        section = reply.answer if rcode == 0 else reply.authority
        section.append(dns.rrset.from_text(owner, int(ttl), "IN", kind, rdata))
    return name, dns.rdatatype.from_text(rdtype), reply.to_wire()


MESSAGES = {
    "MX, 2 records": answer(
        "example.com.",
        "MX",
        "example.com. 300 MX 10 mx1.example.com.",
        "example.com. 300 MX 20 mx2.example.com.",
        "example.com. 300 RRSIG " + RRSIG.format(type="MX"),
    ),
    "A, 1 record": answer(
        "mx1.example.com.",
        "A",
        "mx1.example.com. 300 A 192.0.2.25",
        "mx1.example.com. 300 RRSIG " + RRSIG.format(type="A"),
    ),
    "AAAA, 2 records": answer(
        "mx1.example.com.",
        "AAAA",
        "mx1.example.com. 300 AAAA 2001:db8::25",
        "mx1.example.com. 300 AAAA 2001:db8:0:1::25",
        "mx1.example.com. 300 RRSIG " + RRSIG.format(type="AAAA"),
    ),
    "TLSA, 2 records": answer(
        "_25._tcp.mx1.example.com.",
        "TLSA",
        "_25._tcp.mx1.example.com. 300 TLSA 3 1 1 " + "ab" * 32,
        "_25._tcp.mx1.example.com. 300 TLSA 2 1 1 " + "cd" * 32,
        "_25._tcp.mx1.example.com. 300 RRSIG " + RRSIG.format(type="TLSA"),
    ),
    "CNAME then A": answer(
        "mail.example.com.",
        "A",
        "mail.example.com. 300 CNAME mx1.example.com.",
        "mail.example.com. 300 RRSIG " + RRSIG.format(type="CNAME"),
        "mx1.example.com. 300 A 192.0.2.25",
        "mx1.example.com. 300 RRSIG " + RRSIG.format(type="A"),
    ),
    "NXDOMAIN, SOA+NSEC": answer(
        "_25._tcp.mx2.example.com.",
        "TLSA",
        "example.com. 3600 SOA ns.example.com. host.example.com. 1 7200 900 1209600 300",
        "example.com. 3600 RRSIG " + RRSIG.format(type="SOA"),
        "mx1.example.com. 300 NSEC www.example.com. A AAAA RRSIG NSEC",
        "mx1.example.com. 300 RRSIG " + RRSIG.format(type="NSEC"),
        rcode=3,
    ),
}


def ours(codec: SimpleNamespace, name: str, rdtype: int, data: bytes) -> Callable[[], DnsAnswer]:
    build_query, parse_message = codec.build_query, codec.parse_message
    answer_from_message, message_type = codec.answer_from_message, codec.Message

    def run() -> DnsAnswer:
        build_query(0x1234, name, rdtype)
        message = parse_message(data)
        assert isinstance(message, message_type)
        answer: DnsAnswer = answer_from_message(message, name, rdtype)
        return answer

    return run


def theirs(name: str, rdtype: int, data: bytes) -> Callable[[], object]:
    kind = dns.rdatatype.RdataType.make(rdtype)

    def run() -> object:
        query = dns.message.make_query(name, kind, want_dnssec=True, payload=1232)
        query.flags |= dns.flags.AD
        query.to_wire()
        return dns.message.from_wire(data)

    return run


def best_microseconds(function: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs; the best counts")
    args = parser.parse_args()
    versions = f"Python {platform.python_version()}, dnspython {dns.version.version}"
    print(f"{versions}, {platform.machine()}")
    codecs = {"ours": dns_codec.shipped()}
    if dns_codec.compiled():
        codecs = {"compiled": dns_codec.shipped(), "source": dns_codec.from_source()}
    columns = "".join(f"{f'{kind} µs':>13}" for kind in codecs)
    print(f"{'message':<22}{'octets':>7}{columns}{'dnspython µs':>14}  speed-up")
    for label, (name, rdtype, data) in MESSAGES.items():
        # Same messages, same result: every codec must read every one of them.
        for codec in codecs.values():
            outcome = ours(codec, name, rdtype, data)().outcome
            assert outcome in (DnsOutcome.ANSWER, DnsOutcome.NXDOMAIN)
        assert isinstance(theirs(name, rdtype, data)(), dns.message.Message)
        # Interleaved per message, so a noisy moment hits every contender.
        times = [
            best_microseconds(ours(codec, name, rdtype, data), args.number, args.repeat)
            for codec in codecs.values()
        ]
        oracle = best_microseconds(theirs(name, rdtype, data), args.number // 10, args.repeat)
        cells = "".join(f"{mine:>13.1f}" for mine in times)
        ratios = " ".join(f"{oracle / mine:.1f}x" for mine in times)
        print(f"{label:<22}{len(data):>7}{cells}{oracle:>14.1f}  {ratios}")


if __name__ == "__main__":
    main()
