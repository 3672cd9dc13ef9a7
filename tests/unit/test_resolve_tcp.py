"""scanner.resolve.tcp: one DNS exchange over TCP (RFC 1035 section 4.2.2's
length prefix), and its wait while this machine has no descriptor to spare.
The client's use of it after TC is in test_resolve_client.py."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from scanner.resolve import tcp
from tests.unit.scarce import scarce_connections

QUERY = b"\x12\x34" + b"query body"
REPLY = b"\x12\x34" + b"reply body, longer than the query"


def _exchange(seen: list[bytes]) -> bytes:
    """QUERY exchanged with a server that reads one length-prefixed message
    into ``seen`` and answers REPLY."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        seen.append(await reader.readexactly(size))
        writer.write(len(REPLY).to_bytes(2, "big") + REPLY)
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            return await tcp.exchange("127.0.0.1", server.sockets[0].getsockname()[1], QUERY)

    return asyncio.run(main())


def test_exchange_prefixes_the_message_and_reads_the_reply() -> None:
    seen: list[bytes] = []
    assert _exchange(seen) == REPLY
    assert seen == [QUERY]


def test_a_reply_cut_short_raises() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(2 + len(QUERY))
        writer.write(b"\x00\x40" + b"short")  # says 64 octets, sends 5
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            await tcp.exchange("127.0.0.1", server.sockets[0].getsockname()[1], QUERY)

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(main())


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
def test_no_descriptor_here_waits_then_exchanges(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE/ENFILE on connect is this machine's (scanner.fdlimit): the
    exchange waits for a descriptor and goes on."""
    failures = scarce_connections(monkeypatch, code)
    seen: list[bytes] = []
    assert _exchange(seen) == REPLY
    assert (failures, seen) == ([], [QUERY])


def test_a_refused_connection_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other error is the resolver's: no wait."""
    calls = 0

    async def refused(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    monkeypatch.setattr(asyncio, "open_connection", refused)
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(tcp.exchange("127.0.0.1", 53, QUERY))
    assert calls == 1
