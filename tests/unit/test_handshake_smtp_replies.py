"""The sans-IO SMTP client's replies: EHLO keywords, the bounds on lines and
replies (RFC 5321 section 4.5.3.1), random bytes, and the one-line summaries
the dataset stores. The conversations are in test_handshake_smtp."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.handshake.smtp import (
    MAX_LINE,
    MAX_REPLY_BYTES,
    MAX_REPLY_LINES,
    Done,
    Event,
    Phase,
    Reply,
    ReplyError,
    ReplyReader,
    Send,
    SmtpClient,
    ehlo_keywords,
    offers,
)
from scanner.status import SmtpStatus
from tests.unit.test_handshake_smtp import BANNER, EHLO_PLAIN, EOF, NAME, drive


@pytest.mark.parametrize(
    ("reply", "keywords"),
    [
        (Reply(250, ("mx",)), ()),
        (Reply(250, ("mx", "size  1000 ", "8bitmime", "")), ("SIZE 1000", "8BITMIME")),
        (Reply(250, ("mx", "AUTH PLAIN login")), ("AUTH PLAIN login",)),
        (Reply(502, ("mx", "STARTTLS")), ()),
        (None, ()),
    ],
)
def test_ehlo_keywords(reply: Reply | None, keywords: tuple[str, ...]) -> None:
    assert ehlo_keywords(reply) == keywords


@pytest.mark.parametrize(
    ("keywords", "offered"),
    [
        (("PIPELINING", "STARTTLS"), True),
        (("STARTTLS foo",), True),
        (("STARTTLSX",), False),
        (("XSTARTTLS",), False),
        ((), False),
    ],
)
def test_offers(keywords: tuple[str, ...], offered: bool) -> None:
    assert offers(keywords, "STARTTLS") is offered


def test_a_1_mib_line_fails_early_with_bounded_memory() -> None:
    client = SmtpClient(NAME)
    line = b"220 " + b"x" * (1 << 20)
    events: list[Event] = []
    fed = 0
    while fed < len(line) and not events:
        events += client.receive_data(line[fed : fed + 4096])
        fed += 4096
    assert events == [
        Done(SmtpStatus.BANNER_ERROR, f"the banner: reply line longer than {MAX_LINE} bytes")
    ]
    assert fed <= MAX_LINE + 4096
    # The rest of the megabyte is dropped, not buffered.
    assert client.receive_data(line[fed:]) == []
    assert client.phase is Phase.CLOSED


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"250-x\r\n", f"reply longer than {MAX_REPLY_LINES} lines"),
        (b"250-" + b"y" * 4000 + b"\r\n", f"reply longer than {MAX_REPLY_BYTES} bytes"),
    ],
)
def test_an_endless_multiline_reply_is_cut_off(line: bytes, reason: str) -> None:
    client = SmtpClient(NAME)
    client.receive_data(BANNER)
    events: list[Event] = []
    sent = 0
    while not events and sent < 10_000:
        events = client.receive_data(line)
        sent += 1
    assert events == [Done(SmtpStatus.PROTOCOL_ERROR, f"the reply to EHLO: {reason}")]
    assert sent * len(line) <= MAX_REPLY_BYTES + len(line)
    assert client.receive_data(line * 100) == []


def test_reply_reader_buffered_counts_partial_replies() -> None:
    reader = ReplyReader()
    reader.feed(b"250-a\r\n250")
    assert reader.next_reply() is None
    assert reader.buffered == len(b"250-a\r\n250")
    reader.feed(b" b\r\n")
    assert reader.next_reply() == Reply(250, ("a", "b"))
    assert reader.buffered == 0


def test_reply_reader_stays_failed() -> None:
    reader = ReplyReader(max_line=8)
    reader.feed(b"250 123456789\r\n")
    error = reader.next_reply()
    assert error == ReplyError("reply line longer than 8 bytes")
    reader.feed(b"250 ok\r\n")
    assert reader.next_reply() == error
    assert reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise_and_end_at_most_once(chunks: list[bytes]) -> None:
    client = SmtpClient(NAME)
    events: list[Event] = []
    for chunk in chunks:
        events += client.receive_data(chunk)
        if client.phase is Phase.TLS:
            events += client.tls_established()
    events += client.receive_eof()
    dones = [e for e in events if isinstance(e, Done)]
    assert len(dones) == 1
    assert client.outcome == dones[0]
    # Only the four probe commands are ever written.
    for event in events:
        if isinstance(event, Send):
            assert event.data.split(b" ")[0].rstrip(b"\r\n") in {
                b"EHLO",
                b"HELO",
                b"STARTTLS",
                b"QUIT",
            }


def test_eof_after_done_is_quiet() -> None:
    client, events = drive((BANNER, EHLO_PLAIN, EOF, EOF))
    assert events[-1] == Done(SmtpStatus.NO_STARTTLS, "")
    assert client.phase is Phase.CLOSED


def test_tls_established_out_of_turn_is_a_local_error() -> None:
    client = SmtpClient(NAME)
    with pytest.raises(RuntimeError, match="phase banner"):
        client.tls_established()


@pytest.mark.parametrize("name", ["", "has space", "crlf\r\nMAIL FROM:<x>", "x" * 256, "ünï"])
def test_unusable_ehlo_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="EHLO name"):
        SmtpClient(name)


@pytest.mark.parametrize(
    ("reply", "summary"),
    [
        (Reply(220, ()), "220"),
        (Reply(250, ("a", "b")), "250 a"),
        (Reply(554, ("x" * 200,)), "554 " + "x" * 160 + "..."),
    ],
)
def test_reply_summary(reply: Reply, summary: str) -> None:
    assert reply.summary() == summary
