"""The SMTP replies of the testbed's mail hosts (RFC 5321 section 4.2, with the
enhanced status codes of RFC 3463, and STARTTLS per RFC 3207): pure, no I/O.
What the mail hosts say is decided here; testbed.responder only frames lines
and writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, auto

from testbed.model import Behavior


class Action(Enum):
    """What the connection does after sending a reply."""

    CONTINUE = auto()
    STARTTLS = auto()
    CLOSE = auto()


@dataclass(frozen=True, slots=True)
class ServerReply:
    """What the testbed's mail server sends to one command line (``data``, whole
    lines with their CRLF), what the connection does next, and whether the
    command was an error (counted towards the responder's error limit)."""

    data: bytes
    action: Action = Action.CONTINUE
    error: bool = False


def _ehlo_reply(hostname: str, *, starttls: bool, extra: tuple[str, ...] = ()) -> bytes:
    lines = [hostname, "PIPELINING", "SIZE 10240000", "8BITMIME", *extra]
    if starttls:
        lines.append("STARTTLS")
    text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
    return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class Dialogue:
    """The SMTP replies of one listener behaviour, computed once (pure: no I/O).

    The responder implements only what a DANE scanner uses: EHLO/HELO,
    STARTTLS, NOOP, RSET and QUIT. It never accepts mail. Enhanced status
    codes are those of RFC 3463.
    """

    hostname: str
    behavior: Behavior
    tls_extensions: tuple[str, ...] = ()  # offered in the EHLO reply over TLS only

    @property
    def banner(self) -> bytes:
        return f"220 {self.hostname} ESMTP danescan-testbed\r\n".encode("ascii")

    def respond(
        self, line: bytes, *, tls_active: bool, greylisted_for: float | None = None
    ) -> ServerReply:
        """The reply to one command line (without its line ending).

        ``greylisted_for``: the client is greylisted on this connection and a
        new connection would pass in that many seconds.
        """
        verb, _, argument = line.strip().partition(b" ")
        verb = verb.upper()
        argument = argument.strip()
        if verb == b"EHLO":
            if not argument:
                return ServerReply(b"501 5.5.4 Syntax: EHLO hostname\r\n", error=True)
            if greylisted_for is not None:
                return ServerReply(self.greylisted(greylisted_for))
            offer = not tls_active and self.behavior is not Behavior.NO_STARTTLS
            extra = self.tls_extensions if tls_active else ()
            return ServerReply(_ehlo_reply(self.hostname, starttls=offer, extra=extra))
        if verb == b"HELO":
            if not argument:
                return ServerReply(b"501 5.5.4 Syntax: HELO hostname\r\n", error=True)
            if greylisted_for is not None:
                return ServerReply(self.greylisted(greylisted_for))
            return ServerReply(f"250 {self.hostname}\r\n".encode("ascii"))
        if verb == b"STARTTLS":
            return self._starttls(argument, tls_active=tls_active)
        if verb in (b"NOOP", b"RSET"):
            return ServerReply(b"250 2.0.0 OK\r\n")
        if verb == b"QUIT":
            return ServerReply(b"221 2.0.0 Bye\r\n", Action.CLOSE)
        if verb in (b"MAIL", b"RCPT", b"DATA", b"BDAT"):
            return ServerReply(b"503 5.5.1 No mail is accepted by this host\r\n", error=True)
        return ServerReply(b"502 5.5.1 Command not implemented\r\n", error=True)

    def greylisted(self, remaining: float) -> bytes:
        """The temporary refusal of a greylisted client (RFC 5321 section 4.2.1:
        a 4yz reply asks the client to try again later)."""
        seconds = math.ceil(max(0.0, remaining))
        return (
            f"450 4.7.1 {self.hostname}: Greylisted, try again in {seconds} seconds\r\n"
        ).encode("ascii")

    def too_many_connections(self, client: str) -> bytes:
        """Postfix's words to a client beyond its connection limits; 421 closes
        the channel (RFC 5321 section 3.8)."""
        return (f"421 4.7.0 {self.hostname} Error: too many connections from {client}\r\n").encode(
            "ascii"
        )

    def _starttls(self, argument: bytes, *, tls_active: bool) -> ServerReply:
        if tls_active:
            return ServerReply(b"503 5.5.1 TLS already active\r\n", error=True)
        if self.behavior is Behavior.NO_STARTTLS:
            return ServerReply(b"502 5.5.1 Command not implemented\r\n", error=True)
        if argument:
            return ServerReply(b"501 5.5.4 Syntax: STARTTLS\r\n", error=True)
        if self.behavior is Behavior.STARTTLS_454:
            return ServerReply(b"454 4.7.0 TLS not available\r\n")
        return ServerReply(b"220 2.0.0 Ready to start TLS\r\n", Action.STARTTLS)
