"""Which worker owns an MX address: the only one that connects to it.

Rendezvous (highest random weight) hashing: the owner of an address is the
worker whose digest of (worker, address) is highest. Every task computes it
alone from the same list of workers, and when a worker leaves, only the
addresses it owned move, each to the next-highest worker. The digest is
BLAKE2b, stable across processes and machines (unlike ``hash()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b


def owner(address: str, workers: Sequence[str]) -> str:
    """The worker of ``workers`` that owns ``address``; ``workers`` must not be empty."""
    if not workers:
        raise ValueError("no workers to own an address")
    return max(workers, key=lambda worker: _weight(worker, address))


def _weight(worker: str, address: str) -> bytes:
    return blake2b(f"{worker}\x00{address}".encode(), digest_size=8).digest()
