"""The client side of an SMTP STARTTLS probe, sans-IO: bytes in, events out.

Implements:

- RFC 5321 section 4.2: reply syntax (a three-digit code, "-" continuation
  lines, a last line with a space or nothing after the code, one code for
  every line of a reply); section 4.5.3.1.5 bounds a reply line at 512 octets,
  which real servers exceed, so the bound here is looser but still finite.
- RFC 5321 sections 3.1 and 3.2: the 220 greeting, EHLO, and the HELO fallback
  when EHLO is answered with a permanent error; section 4.1.1.10: QUIT.
- RFC 3207 section 4: STARTTLS, a 220 reply before the TLS handshake, and
  section 4.2: every fact learnt before TLS is discarded and EHLO is sent
  again over TLS.
- RFC 7672 section 2.2 (TLS discovery): the probe goes no further than
  STARTTLS, EHLO and QUIT; no mail transaction is ever started.

A server is untrusted input. Every way it can misbehave (garbage, endless
replies, bytes sent ahead of a command, plaintext after the 220 reply to
STARTTLS) ends in a ``Done`` event with a status and an error string; nothing
here raises on server input, and the buffered input never exceeds the line
bound plus one received chunk.

Usage from a driver::

    client = SmtpClient("scanner.example.net")
    events = client.receive_data(chunk)  # or client.receive_eof()
    # Send(data): write it; ReadyForTls: start TLS, then client.tls_established();
    # Done(status, error): the outcome is known (a QUIT may follow in Send).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from scanner.status import SmtpStatus

# RFC 5321 allows 512 octets per reply line; banners and EHLO lines of real
# servers are sometimes longer, so allow eight times that before giving up.
MAX_LINE = 4096
# An EHLO reply has a few dozen lines at most; anything this long is hostile.
MAX_REPLY_LINES = 256
MAX_REPLY_BYTES = 64 * 1024
# Bytes of offending input quoted in an error string.
_QUOTE = 40

# Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 section 4.2), then either
# nothing, or "-" (more lines follow) or " " and the text.
_REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])(.*))?", re.DOTALL)
# A Domain or an address literal: printable ASCII, no spaces, as EHLO needs.
_EHLO_NAME = re.compile(r"[!-~]{1,255}")


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete SMTP reply: its code and the text of each line."""

    code: int
    lines: tuple[str, ...]

    @property
    def severity(self) -> int:
        """The first digit: 2 success, 3 intermediate, 4 transient, 5 permanent."""
        return self.code // 100

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def summary(self, limit: int = 160) -> str:
        """The code and the first line, short enough for an error string."""
        first = self.lines[0] if self.lines else ""
        if len(first) > limit:
            first = first[:limit] + "..."
        return f"{self.code} {first}".rstrip()


@dataclass(frozen=True, slots=True)
class ReplyError:
    """The server sent something that is not an SMTP reply within the bounds."""

    reason: str


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes the driver must write to the connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ReadyForTls:
    """The server accepted STARTTLS: the driver must start the TLS handshake now.

    The driver must first make sure nothing it has already received is left
    unread (feed it to ``receive_data``, which turns it into a protocol error),
    and then call ``tls_established`` once the handshake has completed.
    """


@dataclass(frozen=True, slots=True)
class Done:
    """The outcome of the session; emitted exactly once."""

    status: SmtpStatus
    error: str


Event = Reply | Send | ReadyForTls | Done


class Phase(StrEnum):
    """What the client is waiting for."""

    BANNER = "banner"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    TLS = "tls"  # the driver is running the TLS handshake
    EHLO_TLS = "ehlo_tls"
    QUIT = "quit"  # the outcome is known; waiting for the reply to QUIT
    CLOSED = "closed"

    @property
    def awaited(self) -> str:
        """What the client waits for in this phase, for error strings."""
        match self:
            case Phase.BANNER:
                return "the banner"
            case Phase.TLS:
                return "the TLS handshake"
            case Phase.EHLO_TLS:
                return "the reply to EHLO over TLS"
            case Phase.CLOSED:
                return "nothing"
            case _:
                return f"the reply to {self.value.upper()}"


@dataclass(frozen=True, slots=True)
class Transcript:
    """The replies of one session, by the command they answered."""

    banner: Reply | None = None
    ehlo: Reply | None = None
    helo: Reply | None = None
    starttls: Reply | None = None
    ehlo_tls: Reply | None = None


def is_ehlo_name(name: str) -> bool:
    """Whether a name can follow EHLO: printable ASCII, no spaces, 1-255 octets.

    A real FQDN (or an address literal) is the caller's duty; this only rules
    out what would break or smuggle commands into the line (CR, LF, spaces).
    """
    return _EHLO_NAME.fullmatch(name) is not None


def ehlo_keywords(reply: Reply | None) -> tuple[str, ...]:
    """The extension lines of an EHLO reply, keyword upper-cased, parameters kept.

    The first line of a 250 reply to EHLO is the server's greeting, not an
    extension (RFC 5321 section 4.1.1.1); keywords are case-insensitive.
    """
    if reply is None or reply.code != 250:
        return ()
    keywords: list[str] = []
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            params = params.strip()
            keywords.append(f"{keyword.upper()} {params}" if params else keyword.upper())
    return tuple(keywords)


def offers(keywords: tuple[str, ...], extension: str) -> bool:
    """Whether an extension keyword (upper case) is among the EHLO keywords."""
    return any(line.partition(" ")[0] == extension for line in keywords)


def _quote(data: bytes) -> str:
    return repr(bytes(data[:_QUOTE])) + ("..." if len(data) > _QUOTE else "")


class ReplyReader:
    """Incremental parser of SMTP replies with bounded memory.

    Lines end in CRLF; a bare LF is accepted too, since lenient parsing loses
    nothing here and some servers send it. After an error the reader stays
    failed and drops further input.
    """

    __slots__ = (
        "_buffer",
        "_code",
        "_error",
        "_lines",
        "_max_bytes",
        "_max_line",
        "_max_lines",
        "_scanned",
        "_size",
    )

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_lines: int = MAX_REPLY_LINES,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._max_line = max_line
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        # Bytes of the buffer already searched for LF: one-byte feeds stay linear.
        self._scanned = 0
        self._code: int | None = None
        self._lines: list[str] = []
        self._size = 0
        self._error: ReplyError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that belong to no reply returned so far."""
        return len(self._buffer) + self._size

    def feed(self, data: bytes) -> None:
        if self._error is None:
            self._buffer += data

    def next_reply(self) -> Reply | ReplyError | None:
        """The next complete reply, an error, or None when more bytes are needed."""
        while self._error is None:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                if len(self._buffer) > self._max_line:
                    return self._fail(f"reply line longer than {self._max_line} bytes")
                self._scanned = len(self._buffer)
                return None
            if end + 1 > self._max_line:
                return self._fail(f"reply line longer than {self._max_line} bytes")
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            self._scanned = 0
            reply = self._take_line(raw, end + 1)
            if reply is not None:
                return reply
        return self._error

    def _take_line(self, raw: bytes, size: int) -> Reply | ReplyError | None:
        match = _REPLY_LINE.fullmatch(raw)
        if match is None:
            return self._fail(f"malformed reply line {_quote(raw)}")
        code = int(match[1])
        if self._code is not None and code != self._code:
            return self._fail(f"reply code changed from {self._code} to {code} within a reply")
        self._code = code
        self._lines.append((match[3] or b"").decode("utf-8", "backslashreplace"))
        self._size += size
        if len(self._lines) > self._max_lines:
            return self._fail(f"reply longer than {self._max_lines} lines")
        if self._size > self._max_bytes:
            return self._fail(f"reply longer than {self._max_bytes} bytes")
        if match[2] == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code = None
        self._lines = []
        self._size = 0
        return reply

    def _fail(self, reason: str) -> ReplyError:
        self._error = ReplyError(reason)
        self._buffer.clear()
        self._lines = []
        self._size = 0
        return self._error


class SmtpClient:
    """The probe's state machine: banner, EHLO (or HELO), STARTTLS, EHLO, QUIT."""

    __slots__ = ("_ehlo_name", "_outcome", "_phase", "_reader", "_transcript")

    def __init__(self, ehlo_name: str, *, reader: ReplyReader | None = None) -> None:
        if not is_ehlo_name(ehlo_name):
            raise ValueError(f"not usable as an EHLO name: {ehlo_name!r}")
        self._ehlo_name = ehlo_name.encode("ascii")
        self._reader = reader if reader is not None else ReplyReader()
        self._phase = Phase.BANNER
        self._outcome: Done | None = None
        self._transcript = Transcript()

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def outcome(self) -> Done | None:
        return self._outcome

    @property
    def transcript(self) -> Transcript:
        return self._transcript

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the server; returns what happened, in order."""
        if self._phase is Phase.CLOSED:
            return []
        if self._phase is Phase.TLS:
            # Bytes that arrived in plaintext after the 220 reply to STARTTLS
            # would otherwise be taken as the server's first words over TLS.
            return self._finish(
                SmtpStatus.PROTOCOL_ERROR,
                f"plaintext after the 220 reply to STARTTLS: {_quote(data)}",
                quit=False,
            )
        self._reader.feed(data)
        events: list[Event] = []
        while self._phase not in (Phase.TLS, Phase.CLOSED):
            item = self._reader.next_reply()
            if item is None:
                break
            if isinstance(item, ReplyError):
                events.extend(self._malformed(item))
                break
            events.append(item)
            events.extend(self._on_reply(item))
        return events

    def receive_eof(self) -> list[Event]:
        """The server closed the connection (or the read side ended)."""
        phase = self._phase
        self._phase = Phase.CLOSED
        if phase in (Phase.QUIT, Phase.CLOSED):
            return []
        partial = " inside a partial reply" if self._reader.buffered else ""
        if phase is Phase.BANNER:
            return self._finish(
                SmtpStatus.BANNER_ERROR, f"connection closed before the banner{partial}"
            )
        return self._finish(
            SmtpStatus.PROTOCOL_ERROR,
            f"connection closed while waiting for {phase.awaited}{partial}",
        )

    def tls_established(self) -> list[Event]:
        """The driver completed the TLS handshake: greet again over TLS."""
        if self._phase is not Phase.TLS:
            raise RuntimeError(f"tls_established() called in phase {self._phase}")
        return self._command(Phase.EHLO_TLS, b"EHLO " + self._ehlo_name + b"\r\n")

    def _on_reply(self, reply: Reply) -> list[Event]:
        phase = self._phase
        if phase is Phase.BANNER:
            self._transcript = replace(self._transcript, banner=reply)
            if reply.code == 220:
                return self._command(Phase.EHLO, b"EHLO " + self._ehlo_name + b"\r\n")
            return self._finish(SmtpStatus.BANNER_ERROR, f"banner {reply.summary()}")
        if phase is Phase.EHLO:
            self._transcript = replace(self._transcript, ehlo=reply)
            if reply.code == 250:
                if offers(ehlo_keywords(reply), "STARTTLS"):
                    return self._command(Phase.STARTTLS, b"STARTTLS\r\n")
                return self._finish(SmtpStatus.NO_STARTTLS, "")
            if reply.severity == 5:
                return self._command(Phase.HELO, b"HELO " + self._ehlo_name + b"\r\n")
            return self._greeting_refused("EHLO", reply)
        if phase is Phase.HELO:
            self._transcript = replace(self._transcript, helo=reply)
            if reply.code == 250:
                # HELO has no extensions, so no STARTTLS either.
                return self._finish(
                    SmtpStatus.NO_STARTTLS,
                    f"EHLO refused ({self._transcript_ehlo_summary()}); HELO accepted",
                )
            return self._greeting_refused("HELO", reply)
        if phase is Phase.STARTTLS:
            self._transcript = replace(self._transcript, starttls=reply)
            if reply.code == 220:
                if self._reader.buffered:
                    return self._finish(
                        SmtpStatus.PROTOCOL_ERROR,
                        "plaintext after the 220 reply to STARTTLS",
                        quit=False,
                    )
                self._phase = Phase.TLS
                return [ReadyForTls()]
            if reply.severity in (4, 5):
                return self._finish(SmtpStatus.STARTTLS_REFUSED, f"STARTTLS {reply.summary()}")
            return self._finish(
                SmtpStatus.PROTOCOL_ERROR, f"unexpected reply to STARTTLS: {reply.summary()}"
            )
        if phase is Phase.EHLO_TLS:
            self._transcript = replace(self._transcript, ehlo_tls=reply)
            if reply.code == 250:
                return self._finish(SmtpStatus.TLS_OK, "")
            return self._finish(
                SmtpStatus.PROTOCOL_ERROR, f"EHLO over TLS answered {reply.summary()}"
            )
        # The reply to QUIT ends the session whatever it says.
        self._phase = Phase.CLOSED
        return []

    def _greeting_refused(self, verb: str, reply: Reply) -> list[Event]:
        # A transient refusal of the greeting (421 too busy, 450 greylisted) is
        # what a banner 421 is, so it is recorded the same way and is retryable.
        if reply.severity == 4:
            return self._finish(SmtpStatus.BANNER_ERROR, f"{verb} {reply.summary()}")
        return self._finish(
            SmtpStatus.PROTOCOL_ERROR, f"unexpected reply to {verb}: {reply.summary()}"
        )

    def _transcript_ehlo_summary(self) -> str:
        ehlo = self._transcript.ehlo
        return ehlo.summary() if ehlo is not None else ""

    def _malformed(self, error: ReplyError) -> list[Event]:
        if self._phase is Phase.QUIT:
            self._phase = Phase.CLOSED
            return []
        if self._phase is Phase.BANNER:
            status, where = SmtpStatus.BANNER_ERROR, self._phase.awaited
        else:
            status, where = SmtpStatus.PROTOCOL_ERROR, self._phase.awaited
        # Whatever speaks garbage gets no more commands, not even QUIT.
        return self._finish(status, f"{where}: {error.reason}", quit=False)

    def _command(self, phase: Phase, line: bytes) -> list[Event]:
        # Without PIPELINING the server speaks only after each command
        # (RFC 5321 section 4.3.1); bytes already here were sent unasked, and
        # a server that talks out of turn gets no further command.
        if self._reader.buffered:
            return self._finish(
                SmtpStatus.PROTOCOL_ERROR,
                f"unsolicited data before {line.split(b' ')[0].strip().decode()}",
                quit=False,
            )
        self._phase = phase
        return [Send(line)]

    def _finish(self, status: SmtpStatus, error: str, *, quit: bool = True) -> list[Event]:
        done = Done(status, error)
        self._outcome = done
        if quit and self._phase is not Phase.CLOSED:
            self._phase = Phase.QUIT
            return [Send(b"QUIT\r\n"), done]
        self._phase = Phase.CLOSED
        return [done]
