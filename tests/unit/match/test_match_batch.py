"""Batching: results equal one-by-one matching; certificates and digests are shared."""

from __future__ import annotations

import hashlib

from match_pki import NOW, Pki, issue, key, make_pki, rec

from scanner.match.batch import CertPool, MatchJob, match_batch
from scanner.match.dane import match_chain
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord


def _jobs(pki: Pki, hosts: int) -> list[MatchJob]:
    """Hosts of one provider: 5 distinct leaves under one intermediate, mixed RRsets."""
    leaves = [
        issue(f"mx{i}.example.com", key("ec", 20 + i), pki.intermediate, dns=[f"mx{i}.example.com"])
        for i in range(5)
    ]
    ta = rec(2, 1, 1, pki.intermediate)
    jobs = []
    for n in range(hosts):
        leaf = leaves[n % 5]
        ee = rec(3, 1, 1, leaf)
        records = [ee] if n % 3 else [ta, TlsaRecord(3, 1, 1, bytes(32))]
        jobs.append(MatchJob([leaf.der, pki.intermediate.der], records, [f"mx{n % 5}.example.com"]))
    return jobs


def test_batch_equals_one_by_one(pki: Pki) -> None:
    jobs = _jobs(pki, 60)
    batched = match_batch(jobs, NOW)
    single = [match_chain(j.chain, j.records, j.names, NOW, CertPool()) for j in jobs]
    assert batched == single
    assert {r.verdict for r in batched} == {DaneVerdict.PASS}


def test_each_certificate_and_digest_once(pki: Pki) -> None:
    pool = CertPool()
    jobs = _jobs(pki, 300)
    match_batch(jobs, NOW, pool=pool)
    # 5 leaves + 1 intermediate; one SHA-256 of the SPKI each, whatever the number of hosts
    assert pool.stats.certificates == 6
    assert pool.stats.digests == 6
    # the DANE-TA hosts parse 5 leaves and the intermediate once, and check 5 signatures once
    assert pool.stats.parses == 6
    assert pool.stats.signatures == 5
    match_batch(jobs, NOW, pool=pool)  # a long-lived pool keeps them
    assert (pool.stats.digests, pool.stats.signatures) == (6, 5)


def test_dane_ee_does_not_touch_intermediates(pki: Pki) -> None:
    pool = CertPool()
    match_batch([MatchJob(pki.full_chain, [rec(3, 1, 1, pki.leaf)], [])], NOW, pool=pool)
    assert (pool.stats.certificates, pool.stats.digests, pool.stats.parses) == (1, 1, 0)


def test_bounded_pool() -> None:
    pool = CertPool(max_certificates=3)
    pkis = [make_pki(index=i) for i in range(2)]
    for p in pkis:
        for der in p.full_chain:
            pool.digest(der, 1, 1)
    assert pool.stats.certificates == 6
    assert len(pool._slots) <= 3


def test_malformed_certificate_digest() -> None:
    pool = CertPool()
    assert pool.digest(b"\x30\x00", 1, 1) is None  # no SPKI to hash
    assert pool.digest(b"\x30\x00", 0, 1) == hashlib.sha256(b"\x30\x00").digest()
    assert pool.digest(b"\x30\x00", 0, 0) == b"\x30\x00"
