"""Properties of the matcher: built records match, altered records do not, order is irrelevant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from match_pki import KINDS, NAMES, NOW, Pki, make_pki, rec

from scanner.match.batch import CertPool
from scanner.match.dane import match_chain
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord

PKIS = [make_pki(kind, index=i) for kind in KINDS for i in range(2)]


def _record(pki: Pki, usage: int, depth: int, selector: int, mtype: int) -> TlsaRecord:
    return rec(usage, selector, mtype, pki.full_chain[depth])


@st.composite
def built_records(draw: st.DrawFn) -> tuple[Pki, TlsaRecord, int, bool]:
    """(pki, a record made from one of its certificates, the depth it should match, full chain?)."""
    pki = draw(st.sampled_from(PKIS))
    usage = draw(st.sampled_from([2, 3]))
    depth = 0 if usage == 3 else draw(st.sampled_from([1, 2]))
    record = _record(
        pki, usage, depth, draw(st.sampled_from([0, 1])), draw(st.sampled_from([0, 1, 2]))
    )
    return pki, record, depth, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(built_records())
def test_record_built_from_chain_matches(case: tuple[Pki, TlsaRecord, int, bool]) -> None:
    pki, record, depth, full = case
    # a DANE-TA record for the root can only match when the root is sent or carried by it
    chain = pki.full_chain if full or depth < 2 else pki.chain
    result = match_chain(chain, [record], NAMES, NOW, CertPool())
    if depth == 2 and not full and record.selector == 1 and record.mtype == 0:
        assert (result.verdict, result.depth) == (DaneVerdict.PASS, 1)  # bare key signs depth 1
    elif depth == 2 and not full and record.mtype != 0:
        assert result.verdict is DaneVerdict.FAIL_NO_MATCH  # root neither sent nor in the record
    else:
        assert (result.verdict, result.record, result.depth) == (DaneVerdict.PASS, record, depth)


@settings(max_examples=500, deadline=None)
@given(built_records(), st.data())
def test_flipping_any_byte_never_matches(
    case: tuple[Pki, TlsaRecord, int, bool], data: st.DataObject
) -> None:
    pki, record, _, _ = case
    # A 2 0 0 record carries its own anchor certificate: a copy with a flipped byte in
    # its signature is still a certificate of the same key, and OpenSSL never checks the
    # anchor's own signature, so that one case is left out.
    if (record.usage, record.selector, record.mtype) == (2, 0, 0):
        return
    position = data.draw(st.integers(min_value=0, max_value=len(record.data) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    altered = bytearray(record.data)
    altered[position] ^= flip
    bad = TlsaRecord(record.usage, record.selector, record.mtype, bytes(altered))
    result = match_chain(pki.full_chain, [bad], NAMES, NOW, CertPool())
    assert result.verdict is not DaneVerdict.PASS
    assert result.depth == -1


@st.composite
def rrsets(draw: st.DrawFn) -> tuple[Pki, list[TlsaRecord], list[str]]:
    pki = draw(st.sampled_from(PKIS))
    pool = [
        _record(pki, usage, depth, selector, mtype)
        for usage, depth in ((3, 0), (2, 1), (2, 2), (1, 0), (0, 2))
        for selector in (0, 1)
        for mtype in (0, 1, 2)
    ]
    pool += [
        TlsaRecord(3, 1, 1, bytes(32)),
        TlsaRecord(3, 1, 2, bytes(64)),
        TlsaRecord(2, 0, 1, bytes(32)),
        TlsaRecord(2, 1, 2, bytes(63)),  # malformed
        TlsaRecord(7, 1, 1, bytes(32)),  # unknown usage
        TlsaRecord(3, 1, 0, b"not a key"),
    ]
    records = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6))
    names = draw(st.sampled_from([NAMES, ["other.example.net"]]))
    return pki, records, names


@settings(max_examples=300, deadline=None)
@given(rrsets(), st.randoms(use_true_random=False))
def test_record_order_never_changes_the_verdict(
    case: tuple[Pki, list[TlsaRecord], list[str]], rnd: object
) -> None:
    pki, records, names = case
    shuffled = list(records)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for chain in (pki.chain, pki.full_chain):
        first = match_chain(chain, records, names, NOW, CertPool())
        second = match_chain(chain, list(reversed(shuffled)), names, NOW, CertPool())
        assert (first.verdict, first.depth, first.record) == (
            second.verdict,
            second.depth,
            second.record,
        )
