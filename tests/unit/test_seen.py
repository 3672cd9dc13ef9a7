"""The compact set of seen domains: keys are stable, and KeySet behaves as a set."""

from __future__ import annotations

import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.seen import KeySet, name_key

TOP = 2**64 - 1


def test_name_key_is_blake2b_64_big_endian() -> None:
    digest = hashlib.blake2b(b"example.com", digest_size=8).digest()
    assert name_key("example.com") == int.from_bytes(digest, "big")
    # Fixed value: shards and --resume depend on it across runs and versions.
    assert name_key("example.com") == 0x13C51305C1CF2666
    assert 0 <= name_key("a.test") <= TOP
    assert name_key("a.test") != name_key("b.test")


@pytest.mark.parametrize(
    ("added", "probe", "present"),
    [
        ([], 0, False),
        ([0], 0, True),  # smallest key, first bucket
        ([TOP], TOP, True),  # largest key, last bucket
        ([TOP], TOP - 1, False),  # same bucket, not there
        ([1 << 52], (1 << 52) - 1, False),  # neighbours across a bucket boundary
        ([(1 << 52) - 1, 1 << 52], 1 << 52, True),
        ([5, 3, 9, 7], 7, True),  # inserted out of order, in one bucket
        ([5, 3, 9, 7], 6, False),
        ([5, 3, 9, 7], 10, False),  # past the end of the bucket
        ([5, 3, 9, 7], 2, False),  # before its start
        ([42, 42, 42], 42, True),
        ([42], -1, False),  # not a 64-bit unsigned value: never present
        ([42], 1 << 64, False),
        ([42], "42", False),
    ],
)
def test_membership_table(added: list[int], probe: object, present: bool) -> None:
    keys = KeySet(added)
    assert (probe in keys) is present
    assert len(keys) == len(set(added))


def test_add_reports_whether_the_key_was_new() -> None:
    keys = KeySet()
    assert keys.add(7) is True
    assert keys.add(7) is False
    assert keys.add(TOP) is True
    assert len(keys) == 2
    assert list(keys) == [7, TOP]


@pytest.mark.parametrize("bad", [-1, 1 << 64, 1 << 70])
def test_add_rejects_keys_outside_64_bits(bad: int) -> None:
    with pytest.raises(ValueError, match="64 bits"):
        KeySet().add(bad)


def test_survives_pickling_for_worker_processes() -> None:
    keys = KeySet(name_key(f"d{i}.example") for i in range(1000))
    copy = pickle.loads(pickle.dumps(keys))
    assert len(copy) == 1000
    assert list(copy) == list(keys)
    assert name_key("d999.example") in copy
    assert name_key("d1000.example") not in copy


def test_memory_is_about_eight_bytes_a_key() -> None:
    keys = KeySet(name_key(f"d{i}.example") for i in range(200_000))
    per_key = keys.nbytes / len(keys)
    # 8 bytes of key, ~1/16 spare capacity, the fixed bucket list and array
    # headers spread over the keys; a set of 12-byte digests needs ~70-90.
    assert 8 <= per_key < 11


keys_64 = st.integers(min_value=0, max_value=TOP)
# Keys that crowd a few buckets, so insertion order and bucket edges matter.
crowded = st.builds(lambda top, low: top << 52 | low, st.integers(0, 3), st.integers(0, 40))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(keys_64, crowded), max_size=300), st.lists(keys_64, max_size=50))
def test_behaves_like_a_set(added: list[int], others: list[int]) -> None:
    keys = KeySet()
    reference: set[int] = set()
    for key in added:
        assert keys.add(key) is (key not in reference)
        reference.add(key)
    assert len(keys) == len(reference)
    assert list(keys) == sorted(reference)
    for key in added + others:
        assert (key in keys) is (key in reference)
