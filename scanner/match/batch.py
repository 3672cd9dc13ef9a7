"""Batched matching: certificates deduplicated by their bytes, each digest computed once.

A survey sees the same certificates over and over: every host of a provider
presents the same intermediates, often the same leaf, and many MX host names
share one TLSA RRset. :class:`CertPool` keys everything it derives from a
certificate by the certificate's bytes, so across a batch each certificate is
sliced once, each digest that some record needs (SHA-256 or SHA-512 of the
certificate or of its SubjectPublicKeyInfo, or the raw bytes for Full(0)) is
computed exactly once, and each certificate that a DANE-TA path needs is
parsed, and each signature on such a path verified, once. Digests are computed
when a record first asks for them, so a DANE-EE match never pays for the
intermediates above the leaf.

:func:`match_batch` runs the matcher of :mod:`scanner.match.dane` over a batch
of (chain, TLSA RRset, reference identifiers) jobs with one pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from scanner.match import der
from scanner.match.certificates import CertInfo, cert_info, verify_issued, verify_with_spki
from scanner.match.dane import match_chain
from scanner.match.outcome import MatchResult
from scanner.tlsa import TlsaRecord

__all__ = ["CertPool", "MatchJob", "PoolStats", "match_batch"]

_HASHES = {1: hashlib.sha256, 2: hashlib.sha512}
_SPKI = -1  # key of the sliced SubjectPublicKeyInfo in a certificate's slot


@dataclass(slots=True)
class PoolStats:
    """What a pool has done so far (for tests and the benchmark)."""

    certificates: int = 0  # distinct certificate byte strings seen
    digests: int = 0  # digests (or Full(0) selector data) computed
    parses: int = 0  # certificates parsed with cryptography
    signatures: int = 0  # signature verifications


class CertPool:
    """Memo of everything derived from certificate bytes (a ``certificates.CertSource``).

    ``max_certificates`` bounds memory for a pool that lives across batches:
    when a new certificate would exceed it, the pool starts afresh.
    """

    def __init__(self, max_certificates: int = 200_000) -> None:
        self.max_certificates = max_certificates
        self.stats = PoolStats()
        self._slots: dict[bytes, dict[int, bytes | der.DerError | None]] = {}
        self._infos: dict[bytes, CertInfo | None] = {}
        self._issued: dict[tuple[bytes, bytes], bool] = {}
        self._keyed: dict[tuple[bytes, bytes], bool] = {}

    def clear(self) -> None:
        self._slots.clear()
        self._infos.clear()
        self._issued.clear()
        self._keyed.clear()

    def digest(self, cert: bytes, selector: int, mtype: int) -> bytes | None:
        slot = self._slots.get(cert)
        if slot is None:
            if len(self._slots) >= self.max_certificates:
                self.clear()
            slot = self._slots[cert] = {}
            self.stats.certificates += 1
        key = selector << 2 | mtype
        try:
            value = slot[key]
        except KeyError:
            value = slot[key] = self._compute(cert, slot, selector, mtype)
        return value if isinstance(value, bytes) else None

    def _compute(
        self, cert: bytes, slot: dict[int, bytes | der.DerError | None], selector: int, mtype: int
    ) -> bytes | der.DerError | None:
        if selector == 0:
            data: bytes | der.DerError | None = cert
        else:
            data = slot.get(_SPKI)
            if data is None:
                data = slot[_SPKI] = der.spki(cert)
        if not isinstance(data, bytes):
            return data
        self.stats.digests += 1
        if mtype == 0:
            return data
        return _HASHES[mtype](data).digest()

    def info(self, cert: bytes) -> CertInfo | None:
        try:
            return self._infos[cert]
        except KeyError:
            pass
        self.stats.parses += 1
        info = self._infos[cert] = cert_info(cert)
        return info

    def issued_by(self, child: CertInfo, issuer: CertInfo) -> bool:
        key = (child.der, issuer.der)
        result = self._issued.get(key)
        if result is None:
            self.stats.signatures += 1
            result = self._issued[key] = verify_issued(child, issuer)
        return result

    def signed_by_key(self, child: CertInfo, spki: bytes) -> bool:
        key = (child.der, spki)
        result = self._keyed.get(key)
        if result is None:
            self.stats.signatures += 1
            result = self._keyed[key] = verify_with_spki(child, spki)
        return result


@dataclass(frozen=True, slots=True)
class MatchJob:
    """One MX host: the chain it presented (DER, leaf first), its TLSA RRset, its names."""

    chain: Sequence[bytes]
    records: Sequence[TlsaRecord]
    names: Sequence[str]


def match_batch(
    jobs: Iterable[MatchJob],
    now: datetime,
    *,
    ee_name_checks: bool = False,
    ca_store: Sequence[bytes] | None = None,
    pool: CertPool | None = None,
) -> list[MatchResult]:
    """The verdict of every job, in order, sharing one CertPool.

    Pass a long-lived ``pool`` to keep provider certificates across batches.
    """
    if pool is None:
        pool = CertPool()
    return [
        match_chain(
            job.chain,
            job.records,
            job.names,
            now,
            pool,
            ee_name_checks=ee_name_checks,
            ca_store=ca_store,
        )
        for job in jobs
    ]
