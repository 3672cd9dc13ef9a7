"""The testbed's mail hosts: one asyncio process answering SMTP on port 25 of
every listener address (RFC 5321) and upgrading to TLS on STARTTLS (RFC 3207).

Each address behaves as its ``Listener`` says (testbed.model): a normal
STARTTLS host, a host that does not offer STARTTLS, one that answers STARTTLS
with 454, one that accepts the connection and never speaks, a tarpit that
stutters every reply a byte at a time, or one whose TLS handshakes are all
reset. The certificate chain presented depends on the destination address and
on the SNI name the client sends (RFC 6066 section 3), so one process can play
thousands of hosts. The responder never accepts mail: MAIL, RCPT and DATA are
refused.

A listener's ``Pushback`` adds what real mail servers do to the clients they
distrust: a greeting delay, greylisting (450 to EHLO and HELO, RFC 5321
section 4.2.1), per-client connection limits (421 and close, section 3.8), a
delay before the TLS server flight and the reset of each client's first
handshake. The per-client state behind these is testbed.pushback, the replies
are testbed.dialogue, the TLS contexts testbed.tlscontexts; every connection
is recorded in the configuration's ``connection_log`` (testbed.connlog).

The package: the process (binding, serving, the command line), the SMTP
connection, what all connections share (and the silent host), and the two
timers of a connection.

Run as ``python -m testbed.responder CONFIG.json [--ready-file PATH]``; the
configuration is written by testbed.responder_config.write_config.
"""

from testbed.responder.connection import Counters, SilentProtocol
from testbed.responder.process import (
    bind_listeners,
    main,
    raise_open_file_limit,
    serve,
    stop_responder,
)
from testbed.responder.smtp import SmtpProtocol

__all__ = [
    "Counters",
    "SilentProtocol",
    "SmtpProtocol",
    "bind_listeners",
    "main",
    "raise_open_file_limit",
    "serve",
    "stop_responder",
]
