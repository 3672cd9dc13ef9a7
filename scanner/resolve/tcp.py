"""DNS over TCP, the client's fallback when a UDP reply is truncated.

- RFC 7766 section 5: a UDP reply with TC set is asked again over TCP
  (scanner.resolve.client decides when, and matches the reply to its query).
- RFC 1035 section 4.2.2: over TCP each message carries a two-octet length
  prefix. One connection per exchange, closed after the reply.

Out of descriptors or socket memory here (scanner.fdlimit) is this
machine's passing condition, not the resolver's: the exchange waits for one
to come free, within the caller's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib

from scanner.fdlimit import LocalWait, is_local_exhaustion


async def exchange(host: str, port: int, message: bytes) -> bytes:
    """The reply to ``message`` (a whole DNS message, ID included) over one
    TCP connection to the resolver. Raises OSError or IncompleteReadError
    when there is none; the caller sets the timeout and decides whether the
    reply answers ``message``."""
    reader, writer = await _open(host, port)
    try:
        writer.write(len(message).to_bytes(2, "big") + message)
        size = int.from_bytes(await reader.readexactly(2), "big")
        return await reader.readexactly(size)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the resolver, waiting while this machine is out
    of descriptors (EMFILE, ENFILE)."""
    wait = LocalWait()
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            if not is_local_exhaustion(exc):
                raise
        await wait()
