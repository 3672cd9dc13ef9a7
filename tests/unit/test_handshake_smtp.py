"""Tables of server bytes and the events the sans-IO SMTP client makes of them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.handshake.smtp import (
    Done,
    Event,
    Phase,
    ReadyForTls,
    Reply,
    Send,
    SmtpClient,
    Transcript,
    ehlo_keywords,
)
from scanner.status import SmtpStatus


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Script steps besides server bytes: the driver finishes the TLS handshake, or
# the server closes the connection.
TLS = _Marker("TLS")
EOF = _Marker("EOF")
Step = bytes | _Marker

NAME = "scanner.example.net"
EHLO = Send(b"EHLO scanner.example.net\r\n")
HELO = Send(b"HELO scanner.example.net\r\n")
STARTTLS = Send(b"STARTTLS\r\n")
QUIT = Send(b"QUIT\r\n")

BANNER = b"220 mx.example.org ESMTP\r\n"
R_BANNER = Reply(220, ("mx.example.org ESMTP",))
EHLO_TLS_OFFERED = b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
R_EHLO_TLS_OFFERED = Reply(250, ("mx.example.org", "PIPELINING", "STARTTLS"))
EHLO_PLAIN = b"250-mx.example.org\r\n250 SIZE 10240000\r\n"
R_EHLO_PLAIN = Reply(250, ("mx.example.org", "SIZE 10240000"))
GO = b"220 2.0.0 Ready to start TLS\r\n"
R_GO = Reply(220, ("2.0.0 Ready to start TLS",))
BYE = b"221 2.0.0 Bye\r\n"
R_BYE = Reply(221, ("2.0.0 Bye",))
# The events of a session up to STARTTLS, and on to EHLO over TLS.
OFFERED = (R_BANNER, EHLO, R_EHLO_TLS_OFFERED, STARTTLS)
UPGRADED = (*OFFERED, R_GO, ReadyForTls(), EHLO)


def reply(code: int, *lines: str) -> Reply:
    return Reply(code, lines)


def quit_after(reply: Reply, done: Done) -> tuple[Event, ...]:
    """A reply that ends the session: the client says QUIT, then the outcome."""
    return (reply, QUIT, done)


@dataclass(frozen=True)
class Case:
    name: str
    script: tuple[Step, ...]
    events: tuple[Event, ...]


def drive(script: tuple[Step, ...], *, chunk: int = 0) -> tuple[SmtpClient, list[Event]]:
    """Run a script; chunk > 0 feeds each server turn in pieces of that size."""
    client = SmtpClient(NAME)
    events: list[Event] = []
    for step in script:
        if step is TLS:
            events += client.tls_established()
        elif step is EOF:
            events += client.receive_eof()
        else:
            assert isinstance(step, bytes)
            size = chunk or max(len(step), 1)
            for start in range(0, len(step), size):
                events += client.receive_data(step[start : start + size])
    return client, events


# Conversations whose events do not depend on how the bytes are split.
CASES = [
    Case(
        "tls_ok",
        (BANNER, EHLO_TLS_OFFERED, GO, TLS, EHLO_PLAIN, BYE),
        (
            *UPGRADED,
            R_EHLO_PLAIN,
            QUIT,
            Done(SmtpStatus.TLS_OK, ""),
            R_BYE,
        ),
    ),
    Case(
        "no_starttls",
        (BANNER, EHLO_PLAIN, BYE),
        (R_BANNER, EHLO, R_EHLO_PLAIN, QUIT, Done(SmtpStatus.NO_STARTTLS, ""), R_BYE),
    ),
    Case(
        "starttls_keyword_is_case_insensitive",
        (BANNER, b"250-mx\r\n250 starttls\r\n", GO, TLS, b"250 mx\r\n"),
        (
            R_BANNER,
            EHLO,
            reply(250, "mx", "starttls"),
            STARTTLS,
            R_GO,
            ReadyForTls(),
            EHLO,
            *quit_after(reply(250, "mx"), Done(SmtpStatus.TLS_OK, "")),
        ),
    ),
    Case(
        "a_longer_keyword_is_not_starttls",
        (BANNER, b"250-mx\r\n250 STARTTLSX\r\n"),
        (R_BANNER, EHLO, reply(250, "mx", "STARTTLSX"), QUIT, Done(SmtpStatus.NO_STARTTLS, "")),
    ),
    Case(
        "starttls_on_the_greeting_line_is_not_an_extension",
        (BANNER, b"250 STARTTLS\r\n"),
        (R_BANNER, EHLO, reply(250, "STARTTLS"), QUIT, Done(SmtpStatus.NO_STARTTLS, "")),
    ),
    Case(
        "helo_fallback_after_ehlo_5xx",
        (BANNER, b"502 5.5.2 Command not recognized\r\n", b"250 mx.example.org\r\n"),
        (
            R_BANNER,
            EHLO,
            reply(502, "5.5.2 Command not recognized"),
            HELO,
            reply(250, "mx.example.org"),
            QUIT,
            Done(
                SmtpStatus.NO_STARTTLS,
                "EHLO refused (502 5.5.2 Command not recognized); HELO accepted",
            ),
        ),
    ),
    Case(
        "helo_refused_too",
        (BANNER, b"500 no\r\n", b"550 no\r\n"),
        (
            R_BANNER,
            EHLO,
            reply(500, "no"),
            HELO,
            *quit_after(
                reply(550, "no"),
                Done(SmtpStatus.PROTOCOL_ERROR, "unexpected reply to HELO: 550 no"),
            ),
        ),
    ),
    Case(
        "banner_554",
        (b"554 5.7.1 No SMTP service here\r\n", BYE),
        (
            *quit_after(
                reply(554, "5.7.1 No SMTP service here"),
                Done(SmtpStatus.BANNER_ERROR, "banner 554 5.7.1 No SMTP service here"),
            ),
            R_BYE,
        ),
    ),
    Case(
        "banner_421_then_close",
        (b"421 4.3.2 Too many connections\r\n", EOF),
        (
            *quit_after(
                reply(421, "4.3.2 Too many connections"),
                Done(SmtpStatus.BANNER_ERROR, "banner 421 4.3.2 Too many connections"),
            ),
        ),
    ),
    Case(
        "banner_with_a_success_code_other_than_220",
        (b"250 hello\r\n",),
        (reply(250, "hello"), QUIT, Done(SmtpStatus.BANNER_ERROR, "banner 250 hello")),
    ),
    Case(
        "ehlo_421_is_a_transient_greeting_refusal",
        (BANNER, b"421 4.7.0 Try again later\r\n"),
        (
            R_BANNER,
            EHLO,
            *quit_after(
                reply(421, "4.7.0 Try again later"),
                Done(SmtpStatus.BANNER_ERROR, "EHLO 421 4.7.0 Try again later"),
            ),
        ),
    ),
    Case(
        "ehlo_answered_354",
        (BANNER, b"354 what\r\n"),
        (
            R_BANNER,
            EHLO,
            *quit_after(
                reply(354, "what"),
                Done(SmtpStatus.PROTOCOL_ERROR, "unexpected reply to EHLO: 354 what"),
            ),
        ),
    ),
    Case(
        "starttls_454",
        (BANNER, EHLO_TLS_OFFERED, b"454 4.7.0 TLS not available\r\n", BYE),
        (
            *OFFERED,
            *quit_after(
                reply(454, "4.7.0 TLS not available"),
                Done(SmtpStatus.STARTTLS_REFUSED, "STARTTLS 454 4.7.0 TLS not available"),
            ),
            R_BYE,
        ),
    ),
    Case(
        "starttls_502",
        (BANNER, EHLO_TLS_OFFERED, b"502 no\r\n"),
        (
            *OFFERED,
            *quit_after(reply(502, "no"), Done(SmtpStatus.STARTTLS_REFUSED, "STARTTLS 502 no")),
        ),
    ),
    Case(
        "starttls_answered_250",
        (BANNER, EHLO_TLS_OFFERED, b"250 ok\r\n"),
        (
            *OFFERED,
            *quit_after(
                reply(250, "ok"),
                Done(SmtpStatus.PROTOCOL_ERROR, "unexpected reply to STARTTLS: 250 ok"),
            ),
        ),
    ),
    Case(
        "ehlo_over_tls_refused",
        (BANNER, EHLO_TLS_OFFERED, GO, TLS, b"554 go away\r\n"),
        (
            *UPGRADED,
            *quit_after(
                reply(554, "go away"),
                Done(SmtpStatus.PROTOCOL_ERROR, "EHLO over TLS answered 554 go away"),
            ),
        ),
    ),
    Case(
        "bare_lf_line_ends_and_bare_codes",
        (b"220-first\n220\n", b"250-mx\n250-\n250 STARTTLS\r\r\n"),
        (
            reply(220, "first", ""),
            EHLO,
            reply(250, "mx", "", "STARTTLS"),
            STARTTLS,
        ),
    ),
    Case(
        "utf8_and_invalid_utf8_text",
        (b"220 mx \xe2\x9c\x93\r\n", b"250 caf\xc3\xa9 \xff\r\n"),
        (
            reply(220, "mx ✓"),
            EHLO,
            *quit_after(reply(250, "café \\xff"), Done(SmtpStatus.NO_STARTTLS, "")),
        ),
    ),
    Case(
        "close_before_banner",
        (EOF,),
        (Done(SmtpStatus.BANNER_ERROR, "connection closed before the banner"),),
    ),
    Case(
        "close_inside_a_partial_banner",
        (b"220-mx\r\n220 ESM", EOF),
        (
            Done(
                SmtpStatus.BANNER_ERROR,
                "connection closed before the banner inside a partial reply",
            ),
        ),
    ),
    Case(
        "close_while_waiting_for_ehlo",
        (BANNER, EOF),
        (
            R_BANNER,
            EHLO,
            Done(
                SmtpStatus.PROTOCOL_ERROR, "connection closed while waiting for the reply to EHLO"
            ),
        ),
    ),
    Case(
        "close_instead_of_ehlo_over_tls",
        (BANNER, EHLO_TLS_OFFERED, GO, TLS, EOF),
        (
            *UPGRADED,
            Done(
                SmtpStatus.PROTOCOL_ERROR,
                "connection closed while waiting for the reply to EHLO over TLS",
            ),
        ),
    ),
    Case(
        "tls_on_port_25_binary_garbage",
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",),
        (
            Done(
                SmtpStatus.BANNER_ERROR,
                "the banner: malformed reply line "
                "b'\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03'",
            ),
        ),
    ),
    Case(
        "http_server",
        (b"HTTP/1.1 400 Bad Request\r\n\r\n",),
        (
            Done(
                SmtpStatus.BANNER_ERROR,
                "the banner: malformed reply line b'HTTP/1.1 400 Bad Request'",
            ),
        ),
    ),
    Case(
        "code_out_of_grammar",
        (BANNER, b"260 ok\r\n"),
        (
            R_BANNER,
            EHLO,
            Done(SmtpStatus.PROTOCOL_ERROR, "the reply to EHLO: malformed reply line b'260 ok'"),
        ),
    ),
    Case(
        "code_glued_to_text",
        (b"2200 hi\r\n",),
        (Done(SmtpStatus.BANNER_ERROR, "the banner: malformed reply line b'2200 hi'"),),
    ),
    Case(
        "code_changes_within_a_reply",
        (BANNER, b"250-mx\r\n251 STARTTLS\r\n"),
        (
            R_BANNER,
            EHLO,
            Done(
                SmtpStatus.PROTOCOL_ERROR,
                "the reply to EHLO: reply code changed from 250 to 251 within a reply",
            ),
        ),
    ),
    Case(
        "garbage_after_quit_is_ignored",
        (BANNER, EHLO_PLAIN, b"\x00\xff\r\n", b"221 late\r\n"),
        (R_BANNER, EHLO, R_EHLO_PLAIN, QUIT, Done(SmtpStatus.NO_STARTTLS, "")),
    ),
    Case(
        "anything_after_the_reply_to_quit_is_ignored",
        (BANNER, EHLO_PLAIN, BYE, b"250 more\r\n", EOF),
        (R_BANNER, EHLO, R_EHLO_PLAIN, QUIT, Done(SmtpStatus.NO_STARTTLS, ""), R_BYE),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conversation(case: Case) -> None:
    _, events = drive(case.script)
    assert events == list(case.events)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_byte_feeds_give_the_same_events(case: Case) -> None:
    _, events = drive(case.script, chunk=1)
    assert events == list(case.events)


@settings(max_examples=25, deadline=None)
@given(chunk=st.integers(min_value=1, max_value=64))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_any_chunking_gives_the_same_events(case: Case, chunk: int) -> None:
    _, events = drive(case.script, chunk=chunk)
    assert events == list(case.events)


# Where the framing itself is the fault: bytes that arrive before the client
# has spoken. Split differently, they are different conversations.
FRAMING_CASES = [
    Case(
        "starttls_injection_in_one_write",
        (BANNER, EHLO_TLS_OFFERED, b"220 go\r\n250 injected\r\n"),
        (
            *OFFERED,
            reply(220, "go"),
            Done(SmtpStatus.PROTOCOL_ERROR, "plaintext after the 220 reply to STARTTLS"),
        ),
    ),
    Case(
        "starttls_injection_in_a_later_read",
        (BANNER, EHLO_TLS_OFFERED, b"220 go\r\n", b"250 injected\r\n"),
        (
            *OFFERED,
            reply(220, "go"),
            ReadyForTls(),
            Done(
                SmtpStatus.PROTOCOL_ERROR,
                "plaintext after the 220 reply to STARTTLS: b'250 injected\\r\\n'",
            ),
        ),
    ),
    Case(
        "starttls_injection_of_a_partial_line",
        (BANNER, EHLO_TLS_OFFERED, b"220 go\r\n2"),
        (
            *OFFERED,
            reply(220, "go"),
            Done(SmtpStatus.PROTOCOL_ERROR, "plaintext after the 220 reply to STARTTLS"),
        ),
    ),
    Case(
        "reply_sent_ahead_of_ehlo",
        (BANNER + b"250 STARTTLS\r\n",),
        (
            R_BANNER,
            Done(SmtpStatus.PROTOCOL_ERROR, "unsolicited data before EHLO"),
        ),
    ),
    Case(
        "reply_sent_ahead_of_starttls",
        (BANNER, EHLO_TLS_OFFERED + b"220 go\r\n"),
        (
            R_BANNER,
            EHLO,
            R_EHLO_TLS_OFFERED,
            Done(SmtpStatus.PROTOCOL_ERROR, "unsolicited data before STARTTLS"),
        ),
    ),
]


@pytest.mark.parametrize("case", FRAMING_CASES, ids=[c.name for c in FRAMING_CASES])
def test_data_sent_before_its_time(case: Case) -> None:
    client, events = drive(case.script)
    assert events == list(case.events)
    assert client.phase is Phase.CLOSED


def test_transcript_records_each_reply_by_command() -> None:
    client, _ = drive((BANNER, EHLO_TLS_OFFERED, GO, TLS, EHLO_PLAIN))
    assert client.transcript == Transcript(
        banner=R_BANNER, ehlo=R_EHLO_TLS_OFFERED, starttls=R_GO, ehlo_tls=R_EHLO_PLAIN
    )
    assert client.outcome == Done(SmtpStatus.TLS_OK, "")
    assert ehlo_keywords(client.transcript.ehlo) == ("PIPELINING", "STARTTLS")
    assert ehlo_keywords(client.transcript.ehlo_tls) == ("SIZE 10240000",)


def test_transcript_of_a_helo_fallback() -> None:
    client, _ = drive((BANNER, b"502 no\r\n", b"250 mx\r\n"))
    assert client.transcript.ehlo == Reply(502, ("no",))
    assert client.transcript.helo == Reply(250, ("mx",))
    assert ehlo_keywords(client.transcript.ehlo) == ()
