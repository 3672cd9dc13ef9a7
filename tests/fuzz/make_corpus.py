"""Write the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/).

Run once and commit the result: ``.venv/bin/python -m tests.fuzz.make_corpus``.
The seeds are small real inputs: DNS responses built with dnspython (the
codec's oracle in the unit tests), SMTP transcripts of the kinds of servers
the testbed imitates, DER certificates of the test PKI and of OpenSSL's DANE
test vectors, TLSA records, domain lists (plain, CSV, compressed) and an
exclusion file. Crashing inputs found by fuzzing are added by hand beside
them (``crash-*`` files), so this script never deletes anything.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import lzma
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import zstandard
from cryptography.hazmat.primitives.serialization import Encoding

from scanner.match import der
from scanner.resolve import wire
from testbed.pki import association, tlsa_rdata
from tests.pki import make_chain

HERE = Path(__file__).resolve().parent
CONFORMANCE = HERE.parents[2] / "shared" / "conformance" / "openssl-dane"


def _response(qname: str, qtype: str, *answers: str, rcode: int = 0, **kw: object) -> bytes:
    query = dns.message.make_query(qname, qtype, want_dnssec=True)
    query.id = 0x1234  # fixed, so that rerunning this script changes no seed
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AD | dns.flags.RA
    response.set_rcode(rcode)
    for text in answers:
        section, _, rr = text.partition(":")
        target = response.answer if section == "an" else response.authority
        name, ttl, rdtype, rdata = rr.split(" ", 3)
        target.append(dns.rrset.from_text(name, int(ttl), "IN", rdtype, rdata))
    if "ede" in kw:
        response.use_edns(0, dns.flags.DO, 1232, options=[dns.edns.EDEOption(9, "DNSKEY missing")])
    wire_bytes: bytes = response.to_wire()
    return wire_bytes


def dns_messages() -> dict[str, bytes]:
    soa = "au:example.com. 300 SOA ns.example.com. host.example.com. 1 7200 3600 1209600 300"
    return {
        "mx": _response(
            "example.com.",
            "MX",
            "an:example.com. 300 MX 10 mx1.example.com.",
            "an:example.com. 300 MX 20 mx2.example.net.",
        ),
        "a": _response("mx1.example.com.", "A", "an:mx1.example.com. 60 A 192.0.2.25"),
        "aaaa": _response("mx1.example.com.", "AAAA", "an:mx1.example.com. 60 AAAA 2001:db8::25"),
        "cname": _response(
            "mail.example.com.",
            "A",
            "an:mail.example.com. 60 CNAME mx1.example.com.",
            "an:mx1.example.com. 60 A 192.0.2.25",
        ),
        "tlsa": _response(
            "_25._tcp.mx1.example.com.",
            "TLSA",
            "an:_25._tcp.mx1.example.com. 300 TLSA 3 1 1 "
            "3111668338043de264d0256a702248696c9484b6221a42740f920187b4c61838",
            "an:_25._tcp.mx1.example.com. 300 TLSA 2 0 1 "
            "bedc04764cecae80aee454d332758f50847dca424216466e4012e0deae1f2e5f",
        ),
        "nxdomain": _response("nope.example.com.", "MX", soa, rcode=dns.rcode.NXDOMAIN),
        "nodata": _response("example.com.", "TLSA", soa),
        "servfail-ede": _response("bogus.example.com.", "A", rcode=dns.rcode.SERVFAIL, ede=True),
        "rrsig": _response(
            "example.com.",
            "MX",
            "an:example.com. 300 MX 10 mx1.example.com.",
            "an:example.com. 300 RRSIG MX 13 2 300 20300101000000 20200101000000 12345 "
            "example.com. dGVzdHNpZ25hdHVyZQ==",
        ),
        "query": wire.build_query(0x4242, "_25._tcp.mx1.example.com.", 52),
    }


def dns_names() -> dict[str, bytes]:
    names = {
        "plain": "example.com",
        "absolute": "mx1.Example.ORG.",
        "tlsa": "_25._tcp.mail.example.net.",
        "escaped-dot": "a\\.b.example.",
        "escaped-decimal": "\\000\\255.example.",
        "root": ".",
    }
    # Two octets of query ID and one of type, then the name.
    return {key: b"\x12\x34\x0f" + name.encode() for key, name in names.items()}


def smtp_sessions() -> dict[str, bytes]:
    # The first octet sets how the stream is cut (tests/fuzz/harnesses.py).
    sessions = {
        "starttls": b"220 mx.example.com ESMTP\r\n"
        b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n"
        b"220 2.0.0 Ready to start TLS\r\n"
        b"250-mx.example.com\r\n250 SIZE 10240000\r\n221 2.0.0 Bye\r\n",
        "no-starttls": b"220 mx ready\r\n250-mx\r\n250 8BITMIME\r\n221 bye\r\n",
        "helo-fallback": b"220 old ready\r\n502 5.5.2 EHLO not understood\r\n"
        b"250 old\r\n221 bye\r\n",
        "greylist": b"421 4.7.0 mx.example.com too busy, try later\r\n",
        "multiline-banner": b"220-mx.example.com ESMTP\r\n220-no UCE\r\n220 ready\r\n"
        b"250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n221 bye\r\n",
        "bare-lf": b"220 mx\n250-mx\n250 STARTTLS\n220 go\n",
        "garbage": b"SSH-2.0-OpenSSH_9.2\r\n",
        # Past the line bound (MAX_LINE, 4096): libFuzzer grows inputs slowly.
        "long-line": b"220 " + b"x" * 4100 + b"\r\n",
    }
    return {key: bytes([index]) + body for index, (key, body) in enumerate(sessions.items())}


def certificates() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    chain = der.pem_certificates((HERE / "chain.pem").read_bytes())
    out["pki-leaf.der"] = chain[0]
    out["pki-ca.der"] = chain[1]
    for name in ("danetest.pem", "cross-root.pem"):
        path = CONFORMANCE / name
        if path.exists():
            for index, cert in enumerate(der.pem_certificates(path.read_bytes())):
                out[f"openssl-{path.stem}-{index}.der"] = cert
    pem = (HERE / "chain.pem").read_bytes()
    out["chain.pem"] = pem
    return out


def tlsa_records() -> dict[str, bytes]:
    leaf, ca = der.pem_certificates((HERE / "chain.pem").read_bytes())[:2]
    sha512 = association(leaf, 0, 2).hex()
    return {
        # Presentation form (scan verify --tlsa) ...
        "3-1-1.txt": tlsa_rdata(3, 1, 1, leaf).encode(),
        "2-0-1.txt": f"2 0 1 {association(ca, 0, 1).hex().upper()}".encode(),
        "3-0-2-spaced.txt": f"3 0 2 {sha512[:64]} {sha512[64:]}".encode(),
        # ... and RDATA as it comes in a DNS answer.
        "3-1-1.rdata": b"\x03\x01\x01" + association(leaf, 1, 1),
        "2-1-0.rdata": b"\x02\x01\x00" + association(ca, 1, 0),
        "3-0-0.rdata": b"\x03\x00\x00" + leaf,
    }


def name_lines() -> dict[str, bytes]:
    lines = {
        "plain": "example.com",
        "upper-dot": "Mail.Example.ORG.",
        "idn": "Bücher.example",
        "a-label": "xn--bcher-kva.example",
        "address": "192.0.2.1",
        "hyphens": "-bad-.example",
        "empty-label": "a..example",
        "emoji": "☃.example",
    }
    return {key: text.encode() for key, text in lines.items()}


def domain_lists() -> dict[str, bytes]:
    plain = b"# a list\nexample.com\n\nBucher.example\nxn--bcher-kva.example\n192.0.2.1\n"
    tranco = b"1,google.com\r\n2,example.org\r\n3,b\xc3\xbccher.example\r\n"
    header = b'rank,domain,country\n1,example.com,US\n2,"quoted.example",DE\n'
    return {
        "plain.txt": plain,
        "tranco.csv": tranco,
        "header.csv": header,
        "plain.txt.gz": gzip.compress(plain, mtime=0),
        "tranco.csv.bz2": bz2.compress(tranco),
        "plain.txt.xz": lzma.compress(plain),
        "header.csv.zst": zstandard.ZstdCompressor().compress(header),
        "long-line.txt": b"example.com\n" + b"a" * 5000 + b".example\nexample.org\n",
    }


def exclusion_files() -> dict[str, bytes]:
    text = (
        "# opt-outs\n192.0.2.0/24\n2001:db8::/32  # documentation\n198.51.100.7\n"
        "*.optout.example\n.other.example\nBücher.example\nxn--bcher-kva.example\n"
        "::ffff:203.0.113.0/120\nnot an entry\n10.0.0.300\n"
    )
    return {"mixed": text.encode(), "one": b"example.org\n", "v6": b"2001:db8:1::1/128\n"}


SEEDS = {
    "dns_message": dns_messages,
    "dns_name": dns_names,
    "smtp": smtp_sessions,
    "der": certificates,
    "tlsa": tlsa_records,
    "normalise": name_lines,
    "reader": domain_lists,
    "exclude": exclusion_files,
}


def write_chain() -> None:
    """A leaf and its CA from the tests' PKI (tests/pki.py), once."""
    path = HERE / "chain.pem"
    if path.exists():
        return
    chain = make_chain(["example.com"], now=dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC))
    assert chain.intermediate is not None
    path.write_bytes(
        b"".join(c.cert.public_bytes(Encoding.PEM) for c in (chain.leaf, chain.intermediate))
    )


def main() -> None:
    write_chain()
    for target, seeds in SEEDS.items():
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
