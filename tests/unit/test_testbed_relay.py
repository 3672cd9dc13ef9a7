"""The DNS operators' decisions (pure, time and randomness passed in) and the
answers the relay makes itself, checked against dnspython."""

from __future__ import annotations

import math
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from testbed.procs import TestbedError
from testbed.profile import Operator, OperatorKind
from testbed.relay import (
    Action,
    Conduct,
    RelayConfig,
    Route,
    load_config,
    question_end,
    synthesise,
    write_config,
)


def operator(kind: OperatorKind = OperatorKind.HEALTHY, **overrides: object) -> Operator:
    values: dict[str, object] = {
        "name": "op001",
        "address": "127.9.253.1",
        "kind": kind,
        "share": 0.5,
        "median_ms": 40.0,
        "sigma": 0.5,
        "tail": 0.01,
        "loss": 0.02,
        "max_ms": 3000.0,
        "rate_limit": 5 if kind is OperatorKind.RATE_LIMITED else None,
    }
    values.update(overrides)
    return Operator(**values)  # type: ignore[arg-type]


def query(name: str = "a.example.", rdtype: str = "MX") -> bytes:
    message = dns.message.make_query(name, rdtype, want_dnssec=True)
    message.id = 0x1234
    return message.to_wire()


@pytest.mark.parametrize(
    ("kind", "tcp", "uniform", "expected"),
    [
        (OperatorKind.HEALTHY, False, 0.5, Action.FORWARD),
        (OperatorKind.HEALTHY, False, 0.019, Action.DROP),  # loss 2%
        (OperatorKind.HEALTHY, True, 0.019, Action.FORWARD),  # TCP does not lose
        (OperatorKind.DEAD, False, 0.9, Action.DROP),
        (OperatorKind.DEAD, True, 0.9, Action.DROP),
        (OperatorKind.LAME, False, 0.9, Action.REFUSE),
        (OperatorKind.LAME, True, 0.9, Action.REFUSE),
        (OperatorKind.TRUNCATING, False, 0.9, Action.TRUNCATE),
        (OperatorKind.TRUNCATING, True, 0.9, Action.FORWARD),
    ],
)
def test_decisions(kind: OperatorKind, tcp: bool, uniform: float, expected: Action) -> None:
    conduct = Conduct(operator(kind))
    assert conduct.decide(now=100.0, tcp=tcp, uniform=uniform) is expected
    counters = conduct.counters
    assert (counters.queries, counters.tcp_queries) == (1, int(tcp))


def test_rate_limit_truncates_above_the_rate_per_second_and_only_over_udp() -> None:
    conduct = Conduct(operator(OperatorKind.RATE_LIMITED, loss=0.0))
    first_second = [conduct.decide(now=10.1 + i / 100, tcp=False, uniform=0.5) for i in range(8)]
    assert first_second == [Action.FORWARD] * 5 + [Action.TRUNCATE] * 3
    assert conduct.decide(now=10.95, tcp=True, uniform=0.5) is Action.FORWARD
    assert conduct.decide(now=11.0, tcp=False, uniform=0.5) is Action.FORWARD
    assert conduct.counters.truncated == 3


def test_delay_is_the_lognormal_draw_with_a_capped_tail() -> None:
    conduct = Conduct(operator(median_ms=40.0, sigma=0.5, tail=0.01, max_ms=3000.0))
    assert conduct.delay(0.0, 0.5, 10.0) == pytest.approx(0.040)
    assert conduct.delay(1.0, 0.5, 10.0) == pytest.approx(0.040 * math.exp(0.5))
    assert conduct.delay(0.0, 0.005, 10.0) == pytest.approx(0.400)  # in the tail
    assert conduct.delay(0.0, 0.005, 1e6) == pytest.approx(3.0)  # never beyond max_ms
    assert Conduct(operator(median_ms=0.0, max_ms=0.0)).delay(2.0, 0.0, 5.0) == 0.0


def test_truncated_answer_carries_the_question_and_tc() -> None:
    raw = synthesise(query(), truncated=True)
    assert raw is not None
    answer = dns.message.from_wire(raw)
    assert answer.id == 0x1234
    for flag in (dns.flags.QR, dns.flags.TC, dns.flags.RD):
        assert answer.flags & flag
    assert answer.rcode() == dns.rcode.NOERROR
    assert [str(q.name) for q in answer.question] == ["a.example."]
    assert not answer.answer
    assert not answer.authority


def test_refused_answer() -> None:
    raw = synthesise(query("b.test.", "TLSA"), truncated=False, rcode=5)
    assert raw is not None
    answer = dns.message.from_wire(raw)
    assert answer.rcode() == dns.rcode.REFUSED
    assert not answer.flags & dns.flags.TC
    assert answer.question[0].rdtype == dns.rdatatype.TLSA


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x12\x34\x01\x00",
        query()[:20],  # the name cut short
        bytes.fromhex("1234 0100 0002 0000 0000 0000") + b"\x01a\x00\x00\x0f\x00\x01" * 2,
        bytes.fromhex("1234 0100 0001 0000 0000 0000") + b"\xc0\x0c\x00\x0f\x00\x01",
    ],
)
def test_malformed_queries_get_no_answer(data: bytes) -> None:
    assert question_end(data) is None
    assert synthesise(data, truncated=True) is None


def test_config_round_trip(tmp_path: Path) -> None:
    config = RelayConfig(
        routes=(
            Route(operator(), ("127.9.255.1", 53)),
            Route(operator(OperatorKind.RATE_LIMITED, address="127.9.253.2"), ("127.9.255.4", 53)),
        ),
        stats_file=tmp_path / "stats.json",
    )
    write_config(tmp_path / "relay.json", config)
    assert load_config(tmp_path / "relay.json") == config


@pytest.mark.parametrize(
    "routes",
    [
        (Route(operator(address="192.0.2.1"), ("127.9.255.1", 53)),),
        (Route(operator(), ("10.0.0.1", 53)),),
        (Route(operator(), ("127.9.255.1", 53)), Route(operator(), ("127.9.255.1", 53))),
    ],
)
def test_config_refuses_non_loopback_and_duplicates(routes: tuple[Route, ...]) -> None:
    with pytest.raises(TestbedError):
        RelayConfig(routes=routes)
