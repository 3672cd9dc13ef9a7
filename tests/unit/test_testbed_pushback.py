"""The per-client pushback state of one listener (testbed.pushback), with
made-up times."""

from __future__ import annotations

import pytest

from testbed.model import Pushback
from testbed.pushback import RATE_WINDOW, ClientPushback

A, B = "127.0.0.1", "127.0.0.2"


def test_no_limits_admit_everyone() -> None:
    state = ClientPushback(Pushback(greylist_window=5))
    assert all(state.admit(A, 0.0) for _ in range(1000))


def test_concurrency_limit_counts_open_connections_per_client() -> None:
    state = ClientPushback(Pushback(max_concurrent=2))
    assert state.admit(A, 0.0)
    assert state.admit(A, 0.0)
    assert not state.admit(A, 0.0)
    # Another client has its own count.
    assert state.admit(B, 0.0)
    state.release(A)
    assert state.admit(A, 1.0)
    assert not state.admit(A, 1.0)


def test_refused_connections_do_not_count() -> None:
    state = ClientPushback(Pushback(max_concurrent=1))
    assert state.admit(A, 0.0)
    for _ in range(10):
        assert not state.admit(A, 0.0)
    state.release(A)
    assert state.admit(A, 0.0)


def test_release_without_admission_is_harmless() -> None:
    state = ClientPushback(Pushback(max_concurrent=1))
    state.release(A)
    state.release(A)
    assert state.admit(A, 0.0)
    assert not state.admit(A, 0.0)


@pytest.mark.parametrize(
    ("times", "admitted"),
    [
        # The third within a minute is refused.
        ([0.0, 1.0, 2.0], [True, True, False]),
        # Once the first admitted one is a minute old, there is room again.
        ([0.0, 1.0, RATE_WINDOW - 0.001, RATE_WINDOW], [True, True, False, True]),
        # Refused attempts do not count: the fourth is let in at 61 s although
        # the third attempt, refused, was at 30 s.
        ([0.0, 1.0, 30.0, RATE_WINDOW + 1.0], [True, True, False, True]),
        ([0.0, 100.0, 200.0, 300.0], [True, True, True, True]),
    ],
)
def test_rate_limit_counts_admitted_connections_of_the_last_minute(
    times: list[float], admitted: list[bool]
) -> None:
    state = ClientPushback(Pushback(max_per_minute=2))
    results = []
    for now in times:
        result = state.admit(A, now)
        results.append(result)
        if result:
            state.release(A)
    assert results == admitted


def test_both_limits() -> None:
    state = ClientPushback(Pushback(max_concurrent=1, max_per_minute=2))
    assert state.admit(A, 0.0)
    assert not state.admit(A, 0.5)  # concurrency
    state.release(A)
    assert state.admit(A, 1.0)
    state.release(A)
    assert not state.admit(A, 2.0)  # rate
    assert state.admit(B, 2.0)


@pytest.mark.parametrize(
    ("window", "times", "expected"),
    [
        # First seen at 10: greylisted until 12; the first at or after 12 passes.
        (2.0, [10.0, 10.5, 11.999, 12.0, 12.1, 500.0], [2.0, 1.5, 0.001, None, None, None]),
        (2.0, [10.0, 13.0, 13.5], [2.0, None, None]),
        # A window of 0: only the first connection is greylisted.
        (0.0, [10.0, 10.0, 11.0], [0.0, None, None]),
        (None, [10.0, 11.0], [None, None]),
    ],
)
def test_greylisting(
    window: float | None, times: list[float], expected: list[float | None]
) -> None:
    state = ClientPushback(Pushback(greylist_window=window))
    results = [state.greylist_remaining(A, now) for now in times]
    assert results == pytest.approx(expected)


def test_greylisting_is_per_client() -> None:
    state = ClientPushback(Pushback(greylist_window=2.0))
    assert state.greylist_remaining(A, 0.0) == 2.0
    assert state.greylist_remaining(B, 1.0) == 2.0
    assert state.greylist_remaining(A, 2.0) is None
    assert state.greylist_remaining(B, 2.0) == pytest.approx(1.0)


def test_first_handshake_reset_per_client() -> None:
    state = ClientPushback(Pushback(reset_first_handshake=True))
    assert state.resets_handshake(A)
    # Asking does not use it up: only a reset that happened does.
    assert state.resets_handshake(A)
    state.handshake_reset(A)
    assert not state.resets_handshake(A)
    assert state.resets_handshake(B)


def test_no_reset_unless_asked() -> None:
    state = ClientPushback(Pushback(greylist_window=1.0))
    assert not state.resets_handshake(A)


def test_state_is_bounded_and_forgets_the_least_recently_seen() -> None:
    state = ClientPushback(Pushback(greylist_window=1.0), max_clients=100)
    for n in range(10_000):
        state.greylist_remaining(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(state) == 100
    recent = "10.0.39.15"  # n = 9999
    assert state.greylist_remaining(recent, 5.0) is None
    # The first ones were forgotten: greylisted again, as new.
    assert state.greylist_remaining("10.0.0.0", 5.0) == 1.0


def test_max_clients_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_clients"):
        ClientPushback(Pushback(), max_clients=0)
