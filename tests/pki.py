"""Certificates and TLSA records for the tests, from the testbed's PKI.

The suite has one certificate factory and one TLSA computation, both in
testbed.pki (the records per RFC 6698 section 2.1, computed without the
scanner's matcher, so they can judge it). A test asks here for a chain of a
root, an intermediate unless it says otherwise, and a leaf for some names,
valid around a given time; ``tlsa_rdata`` and ``association`` give the
records that pin any of its certificates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.pki import Issued, KeyType, Pki, association, tlsa_rdata, write_chain

__all__ = ["Chain", "association", "make_chain", "tlsa_rdata"]


@dataclass(frozen=True, slots=True)
class Chain:
    root: Issued
    intermediate: Issued | None
    leaf: Issued

    @property
    def served(self) -> list[Issued]:
        """Leaf, intermediate and root, as a server that sends them all does."""
        middle = [self.intermediate] if self.intermediate is not None else []
        return [self.leaf, *middle, self.root]

    @property
    def der(self) -> tuple[bytes, ...]:
        return tuple(c.der for c in self.served)

    def write(self, folder: Path, name: str = "chain") -> tuple[Path, Path]:
        """``<name>.pem`` (the served chain, leaf first) and ``<name>.key`` (the leaf's key)."""
        write_chain(folder, name, self.served)
        return folder / f"{name}.pem", folder / f"{name}.key"


def make_chain(
    names: Sequence[str],
    *,
    now: dt.datetime,
    days_before: int = 30,
    days_after: int = 60,
    intermediate: bool = True,
    kind: KeyType = KeyType.ECDSA,
    seed: int = 0,
) -> Chain:
    """Root ("Test Root"), intermediate ("Test Intermediate") and a leaf for
    ``names``, each valid from ``days_before`` before ``now`` to ``days_after``
    after; keys derived from ``seed`` (testbed.pki)."""
    pki = Pki(seed=seed, now=now)
    root = pki.ca("Test Root", kind, days_before=days_before, days_after=days_after)
    middle = None
    if intermediate:
        middle = pki.ca(
            "Test Intermediate", kind, issuer=root, days_before=days_before, days_after=days_after
        )
    leaf = pki.leaf(
        names,
        middle if middle is not None else root,
        kind,
        key_label=names[0],
        days_before=days_before,
        days_after=days_after,
    )
    return Chain(root, middle, leaf)
