"""Where each TLSA record of an RRset matches the certificates a host presented (pure).

RFC 6698 section 2.1 gives a record's meaning: its selector picks the whole
certificate (0) or its SubjectPublicKeyInfo (1), its matching type says how
that is compared (0 exact, 1 SHA-256, 2 SHA-512). :func:`record_depths`
compares every record of an RRset that way with every certificate of the
chains a host's addresses presented, whatever the record's usage, and reports
the lowest depth (0 = leaf) at which each matches. Unlike the DANE algorithm
of :mod:`scanner.match.dane`, which stops at the first record that
authenticates a chain, this finds a record that matches nothing (a next key
published ahead of use, RFC 7671 section 8, or a stale one left behind) even
on a host that passes thanks to another, and ties a DANE-TA record (RFC 7672
section 3.1.2) to the certificate it pins. The digests come from the
matcher's :class:`scanner.match.batch.CertPool`, so a certificate is hashed
once per selector and matching type however many hosts present it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scanner.match.batch import CertPool
from scanner.tlsa import TlsaRecord

__all__ = ["MAX_DEPTH", "record_depth", "record_depths"]

# The dataset stores a depth as int8; OpenSSL stops verifying at depth 100 anyway.
MAX_DEPTH = 127


def record_depth(record: TlsaRecord, chains: Iterable[Sequence[bytes]], pool: CertPool) -> int:
    """The lowest depth at which ``record`` matches a certificate of ``chains``, or -1."""
    selector, mtype = record.selector, record.mtype
    if selector not in (0, 1) or mtype not in (0, 1, 2):
        return -1  # an unknown selector or matching type matches nothing (section 2.1)
    lowest = -1
    for chain in chains:
        for depth, cert in enumerate(chain[: MAX_DEPTH + 1]):
            if lowest != -1 and depth >= lowest:
                break
            if pool.digest(cert, selector, mtype) == record.data:
                lowest = depth
                break
    return lowest


def record_depths(
    records: Sequence[TlsaRecord], chains: Iterable[Sequence[bytes]], pool: CertPool
) -> tuple[int, ...] | None:
    """:func:`record_depth` of each of ``records``, in order; None when no chain
    was presented (``chains`` holds none that is not empty)."""
    presented = list(dict.fromkeys(tuple(chain) for chain in chains if chain))
    if not presented:
        return None
    return tuple(record_depth(record, presented, pool) for record in records)
