"""The fuzz harnesses in the normal suite: each over its seed corpus, then
over a fixed number of seeded mutations of it (a few seconds in all).

This is the short, deterministic run; ``make fuzz`` runs the same harnesses
under atheris with coverage feedback for as long as FUZZ_SECONDS says.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.fuzz.harnesses import CORPUS, TARGETS

pytestmark = pytest.mark.fuzz

# Mutations per target; the slowest harnesses (a file per input, a chain
# match per input) take about 1 ms each.
MUTATIONS = 2000
# A parser that takes this long on one small input is as good as looping.
SLOW = 2.0
_INTERESTING = (0x00, 0x01, 0x0A, 0x0D, 0x20, 0x2D, 0x2E, 0x30, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF)


def _seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / target).iterdir()) if p.is_file()]


def _mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip a bit
            at = min(at, len(out) - 1)
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # an interesting octet
            out[min(at, len(out) - 1)] = rng.choice(_INTERESTING)
        elif kind == 2:  # insert random octets
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3:  # delete a range
            del out[at : at + rng.randint(1, 16)]
        elif kind == 4 and out:  # duplicate a range
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 32)]
        else:  # splice in part of another seed
            other = rng.choice(seeds)
            start = rng.randrange(len(other) + 1)
            out[at:at] = other[start : start + rng.randint(1, 64)]
    return bytes(out)


def _run(harness: Callable[[bytes], None], data: bytes) -> None:
    started = time.perf_counter()
    try:
        harness(data)
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} on input {data!r}") from exc
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW, f"{elapsed:.1f} s on input {data!r}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds(target: str) -> None:
    seeds = _seeds(target)
    assert seeds, f"no seed corpus in {CORPUS / target}"
    for data in seeds:
        _run(TARGETS[target], data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutations(target: str) -> None:
    seeds = _seeds(target)
    rng = random.Random(f"danescan-fuzz-{target}")  # deterministic: same inputs every run
    for _ in range(MUTATIONS):
        _run(TARGETS[target], _mutate(rng, rng.choice(seeds), seeds))
