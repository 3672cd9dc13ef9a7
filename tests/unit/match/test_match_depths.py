"""Record depths: the lowest depth at which each record matches a presented chain."""

from __future__ import annotations

import pytest
from match_pki import Pki, make_pki, rec

from scanner.match.batch import CertPool
from scanner.match.depths import MAX_DEPTH, record_depth, record_depths
from scanner.tlsa import TlsaRecord

NOTHING = TlsaRecord(3, 1, 1, bytes(32))


@pytest.mark.parametrize(
    ("usage", "selector", "mtype", "target", "expected"),
    [
        # any usage: the depth is where the data matches, not where the usage applies
        (3, 1, 1, "leaf", 0),
        (3, 0, 2, "leaf", 0),
        (3, 1, 0, "leaf", 0),
        (2, 1, 1, "intermediate", 1),
        (2, 0, 1, "intermediate", 1),
        (2, 1, 2, "root", 2),
        (3, 1, 1, "root", 2),  # a DANE-EE record of the root key matches at depth 2
        (0, 0, 1, "intermediate", 1),
    ],
)
def test_record_matches_at_its_certificate_depth(
    pki: Pki, pool: CertPool, usage: int, selector: int, mtype: int, target: str, expected: int
) -> None:
    record = rec(usage, selector, mtype, getattr(pki, target))
    assert record_depth(record, [pki.full_chain], pool) == expected
    assert record_depths([record], [pki.full_chain], pool) == (expected,)


def test_record_that_matches_nothing_is_minus_one(pki: Pki, pool: CertPool) -> None:
    other = make_pki(index=5)
    assert record_depths([NOTHING, rec(3, 1, 1, other.leaf)], [pki.full_chain], pool) == (-1, -1)


@pytest.mark.parametrize(("selector", "mtype"), [(2, 1), (1, 3), (255, 0)])
def test_unknown_selector_or_type_matches_nothing(
    pki: Pki, pool: CertPool, selector: int, mtype: int
) -> None:
    record = TlsaRecord(3, selector, mtype, rec(3, 1, 1, pki.leaf).data)
    assert record_depth(record, [pki.chain], pool) == -1
    assert pool.stats.digests == 0


@pytest.mark.parametrize("chains", [[], [[]], [(), []]])
def test_no_chain_presented_is_none(pki: Pki, pool: CertPool, chains: list[list[bytes]]) -> None:
    assert record_depths([rec(3, 1, 1, pki.leaf)], chains, pool) is None


def test_no_records_with_a_chain_is_empty(pki: Pki, pool: CertPool) -> None:
    assert record_depths([], [pki.chain], pool) == ()


def test_lowest_depth_over_every_address_chain(pki: Pki, pool: CertPool) -> None:
    other = make_pki(index=5)
    # One address sends only the leaf, another leaf and intermediate: the
    # intermediate's record matches at depth 1, from the second chain.
    ta = rec(2, 1, 1, pki.intermediate)
    other_ta = rec(2, 1, 1, other.intermediate)
    chains = [[pki.leaf.der], other.chain, pki.chain]
    assert record_depths([ta, other_ta, rec(3, 1, 1, other.leaf)], chains, pool) == (1, 1, 0)
    # The root re-sent as a leaf by a broken server: depth 0 wins over depth 2.
    root = rec(2, 0, 1, pki.root)
    assert record_depths([root], [pki.full_chain, [pki.root.der]], pool) == (0,)


def test_each_certificate_hashed_once_per_selector_and_type(pki: Pki, pool: CertPool) -> None:
    records = [rec(3, 1, 1, pki.leaf), rec(2, 1, 1, pki.intermediate), NOTHING]
    for _ in range(3):  # hosts of a provider present the same chain
        assert record_depths(records, [pki.full_chain, pki.full_chain], pool) == (0, 1, -1)
    assert pool.stats.digests == 3  # leaf, intermediate, root: SPKI SHA-256 each once


def test_depth_beyond_int8_is_not_searched(pki: Pki, pool: CertPool) -> None:
    filler = [pki.leaf.der] * (MAX_DEPTH + 1)
    assert (
        record_depth(rec(2, 1, 1, pki.intermediate), [[*filler, pki.intermediate.der]], pool) == -1
    )
    at_limit = [*filler[:MAX_DEPTH], pki.intermediate.der]
    assert record_depth(rec(2, 1, 1, pki.intermediate), [at_limit], pool) == MAX_DEPTH
