"""The SMTP replies of the testbed's mail hosts (testbed.dialogue) that go with
pushback, the tarpit and TLS resets."""

from __future__ import annotations

import pytest

from testbed.dialogue import Action, Dialogue
from testbed.model import Behavior

HOST = "mx.test"


@pytest.mark.parametrize(
    ("remaining", "seconds"), [(2.0, 2), (1.2, 2), (0.001, 1), (0.0, 0), (-0.5, 0)]
)
@pytest.mark.parametrize("verb", [b"EHLO", b"HELO", b"ehlo"])
def test_greylisted_reply(verb: bytes, remaining: float, seconds: int) -> None:
    reply = Dialogue(HOST, Behavior.STARTTLS).respond(
        verb + b" scanner.test", tls_active=False, greylisted_for=remaining
    )
    expected = f"450 4.7.1 {HOST}: Greylisted, try again in {seconds} seconds\r\n"
    assert reply.data == expected.encode()
    assert reply.action is Action.CONTINUE
    assert not reply.error


def test_greylisting_leaves_other_commands_alone() -> None:
    dialogue = Dialogue(HOST, Behavior.STARTTLS)
    assert dialogue.respond(b"EHLO", tls_active=False, greylisted_for=3.0).data.startswith(b"501")
    assert dialogue.respond(b"NOOP", tls_active=False, greylisted_for=3.0).data.startswith(b"250")
    assert dialogue.respond(b"QUIT", tls_active=False, greylisted_for=3.0).action is Action.CLOSE


def test_too_many_connections_reply() -> None:
    assert Dialogue(HOST, Behavior.STARTTLS).too_many_connections("127.0.0.1") == (
        b"421 4.7.0 mx.test Error: too many connections from 127.0.0.1\r\n"
    )


@pytest.mark.parametrize("behavior", [Behavior.TARPIT, Behavior.TLS_RESET])
def test_tarpit_and_tls_reset_offer_and_accept_starttls(behavior: Behavior) -> None:
    dialogue = Dialogue(HOST, behavior)
    assert b"250 STARTTLS\r\n" in dialogue.respond(b"EHLO x.test", tls_active=False).data
    reply = dialogue.respond(b"STARTTLS", tls_active=False)
    assert (reply.data, reply.action) == (b"220 2.0.0 Ready to start TLS\r\n", Action.STARTTLS)
