"""MTA-STS policy fetches (RFC 8461 section 3.3) against real HTTPS servers on loopback.

Each test starts its servers on 127.0.0.x (aiohttp's web server behind TLS,
or a bare socket that never answers), with certificates from a root the
test makes (testbed.pki); the fetcher trusts that root as a scan's
``--pkix-ca`` and is told the addresses, as the scan's resolver would.
Every server counts the connections it accepted, so a test can check that
a refused address saw nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from scanner.handshake.contact import ContactPolicy
from scanner.handshake.exclude import parse_exclusions
from scanner.mtasts.fetch import (
    POLICY_PATH,
    Attempt,
    Fetcher,
    FetchSettings,
    Requester,
    pkix_context,
)
from scanner.mtasts.response import MAX_POLICY_BYTES, FetchResult, FetchStatus
from testbed.pki import Issued, KeyType, Pki, write_chain
from tests.settings import polite_settings

S = FetchStatus
NOW = dt.datetime.now(dt.UTC)
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mail.ok.test\r\nmax_age: 86400\r\n"
LOOPBACK = ContactPolicy.build(allow=["127.0.0.0/8"])
SHARED = [f"d{i}.test" for i in range(6)]  # domains whose mta-sts host is one address
GOOD = ["ok.test", "slow.test", "big.test", "moved.test", "html.test", *SHARED]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    content_type: str = "text/plain"
    body: bytes = POLICY
    chunked: bool = False  # no Content-Length
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(slots=True)
class Seen:
    """What one server saw."""

    accepts: int = 0
    hosts: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # of requests
    accepted: list[float] = field(default_factory=list)  # of connections
    active: int = 0
    max_active: int = 0


@dataclass(frozen=True, slots=True)
class Pems:
    folder: Path
    root: Path  # the trusted root, for --pkix-ca

    def context(self, name: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.folder / f"{name}.pem", self.folder / f"{name}.key")
        return context


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> Pems:
    folder = tmp_path_factory.mktemp("pki")
    pki = Pki(seed=19, now=NOW)
    root = pki.ca("Fetch Test Root", KeyType.ECDSA)
    stranger = Pki(seed=20, now=NOW).ca("Untrusted Root", KeyType.ECDSA)

    def chain(
        name: str, names: list[str], issuer: Issued = root, before: int = 30, after: int = 60
    ) -> None:
        leaf = pki.leaf(
            names, issuer, KeyType.ECDSA, key_label=name, days_before=before, days_after=after
        )
        write_chain(folder, name, [leaf])  # as most servers: the root not sent

    chain("good", [f"mta-sts.{d}" for d in GOOD])
    chain("other", ["mta-sts.other.test"])
    chain("untrusted", ["mta-sts.ok.test"], stranger)
    chain("expired", ["mta-sts.ok.test"], before=90, after=-1)
    chain("expired_other", ["mta-sts.other.test"], before=90, after=-1)
    write_chain(folder, "root", [root])
    return Pems(folder, folder / "root.pem")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_port()


class Servers:
    """The servers of one test, all on ``port`` at their own addresses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[str, Seen] = {}
        self._stack = contextlib.AsyncExitStack()

    async def https(
        self, address: str, context: ssl.SSLContext, answers: dict[str, Answer]
    ) -> Seen:
        seen = self.seen[address] = Seen()

        async def handle(request: web.Request) -> web.StreamResponse:
            host = request.host.rsplit(":", 1)[0]
            seen.hosts.append(host)
            seen.starts.append(time.monotonic())
            seen.active += 1
            seen.max_active = max(seen.max_active, seen.active)
            try:
                answer = answers.get(host.removeprefix("mta-sts."), Answer(404, "text/html"))
                await asyncio.sleep(answer.delay)
                return await respond(request, answer)
            finally:
                seen.active -= 1

        app = web.Application()
        app.router.add_get(POLICY_PATH, handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        factory = runner.server
        assert factory is not None

        def counted() -> asyncio.BaseProtocol:
            seen.accepts += 1
            seen.accepted.append(time.monotonic())
            assert factory is not None
            return factory()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(counted, address, self.port, ssl=context)
        self._stack.push_async_callback(server.wait_closed)
        self._stack.callback(server.close)
        return seen

    async def garbage(self, address: str, context: ssl.SSLContext) -> Seen:
        """Completes TLS, then answers with no HTTP at all."""
        seen = self.seen[address] = Seen()

        async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.accepts += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"220 mail.ok.test ESMTP\r\n\x00\xff\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(talk, address, self.port, ssl=context)
        self._stack.push_async_callback(server.wait_closed)
        self._stack.callback(server.close)
        return seen

    async def silent(self, address: str) -> Seen:
        """Accepts, reads, never says a word."""
        seen = self.seen[address] = Seen()
        writers: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.accepts += 1
            writers.append(writer)
            with contextlib.suppress(OSError):
                while await reader.read(4096):
                    pass

        server = await asyncio.start_server(hold, address, self.port)
        self._stack.push_async_callback(server.wait_closed)

        def hang_up() -> None:
            for writer in writers:
                writer.close()

        self._stack.callback(hang_up)
        self._stack.callback(server.close)
        return seen

    async def aclose(self) -> None:
        await self._stack.aclose()


async def respond(request: web.Request, answer: Answer) -> web.StreamResponse:
    headers = {"Content-Type": answer.content_type, **answer.headers}
    if not answer.chunked:
        return web.Response(status=answer.status, body=answer.body, headers=headers)
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(answer.body), 8192):
        await response.write(answer.body[start : start + 8192])
    await response.write_eof()
    return response


def fetcher(
    pems: Pems,
    port: int,
    policy: ContactPolicy = LOOPBACK,
    requester: Requester | None = None,
    **polite: Any,
) -> Fetcher:
    """A fetcher that trusts the test's root, with short bounds, no pause, no retry."""
    settings = FetchSettings(timeout=2.0, connect_timeout=1.0, port=port)
    limits = polite_settings(**{"min_interval": 0.0, "attempts": 1, **polite})
    return Fetcher(pkix_context([pems.root]), limits, settings, policy=policy, requester=requester)


def serve(port: int, test: Callable[[Servers], Awaitable[None]]) -> None:
    """Run ``test`` on a fresh event loop, its servers taken down after it."""

    async def main() -> None:
        servers = Servers(port)
        try:
            await test(servers)
        finally:
            await servers.aclose()

    asyncio.run(main())


def check(result: FetchResult, status: FetchStatus, *words: str) -> None:
    assert result.status is status, result
    for word in words:
        assert word in result.error, result


# ---------------------------------------------------------------- what a server answers

BIG = b"x" * (MAX_POLICY_BYTES + 1)
ANSWERS = {
    "ok.test": Answer(),
    "big.test": Answer(body=BIG),
    "moved.test": Answer(301, headers={"Location": "https://elsewhere.test/"}),
    "html.test": Answer(content_type="text/html; charset=utf-8"),
    "slow.test": Answer(delay=30.0),
}
ANSWERED = [
    (
        "ok.test",
        Answer(content_type="text/plain; charset=utf-8"),
        S.OK,
        200,
        "",
    ),
    ("ok.test", Answer(chunked=True), S.OK, 200, ""),
    ("d0.test", Answer(), S.HTTP_ERROR, 404, "HTTP 404"),  # no answer for d0: 404
    ("moved.test", None, S.REDIRECT, 301, "elsewhere.test"),
    ("html.test", None, S.WRONG_MEDIA_TYPE, 200, "text/html"),
    ("big.test", None, S.TOO_LARGE, 200, "Content-Length 65537"),
    ("big.test", Answer(body=BIG, chunked=True), S.TOO_LARGE, 200, "body over"),
    ("big.test", Answer(body=b"x" * 10_000_000, chunked=True), S.TOO_LARGE, 200, "body over"),
]  # fmt: skip


@pytest.mark.parametrize(("domain", "answer", "status", "code", "words"), ANSWERED)
def test_what_the_server_answers(
    pems: Pems,
    port: int,
    domain: str,
    answer: Answer | None,
    status: FetchStatus,
    code: int,
    words: str,
) -> None:
    async def test(servers: Servers) -> None:
        answers = dict(ANSWERS)
        if answer is not None:
            answers[domain] = answer
        if domain == "d0.test":
            answers.pop("d0.test", None)
        seen = await servers.https("127.0.0.41", pems.context("good"), answers)
        result = await fetcher(pems, port).fetch(domain, ["127.0.0.41"])
        check(result, status, words)
        assert (result.http_status, result.address, result.attempts) == (code, "127.0.0.41", 1)
        assert not result.transient
        assert seen.hosts == [f"mta-sts.{domain}"]  # asked once, redirect not followed
        if status is S.OK:
            assert result.body == POLICY.decode()
        else:
            assert result.body is None

    serve(port, test)


# ---------------------------------------------------------------- the certificate


@pytest.mark.parametrize(
    ("chain", "status", "words"),
    [
        ("other", S.CERT_NAME_MISMATCH, "mta-sts.ok.test"),
        ("untrusted", S.CERT_INVALID, "issuer"),
        ("expired", S.CERT_INVALID, "expired"),
        # OpenSSL checks the name before the dates (scanner.mtasts.fetch says so).
        ("expired_other", S.CERT_NAME_MISMATCH, "mta-sts.ok.test"),
    ],
)
def test_the_certificate_must_be_pkix_valid_for_the_name(
    pems: Pems, port: int, chain: str, status: FetchStatus, words: str
) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.https("127.0.0.42", pems.context(chain), {"ok.test": Answer()})
        result = await fetcher(pems, port).fetch("ok.test", ["127.0.0.42"])
        check(result, status, words)
        assert (result.http_status, result.transient, result.address) == (None, False, "127.0.0.42")
        assert seen.accepts == 1
        assert seen.hosts == []

    serve(port, test)


def test_the_root_must_be_trusted_by_the_fetcher(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        await servers.https("127.0.0.42", pems.context("good"), {"ok.test": Answer()})
        polite = polite_settings(min_interval=0.0, attempts=1)
        settings = FetchSettings(timeout=2.0, port=port)
        alone = Fetcher(pkix_context(), polite, settings, policy=LOOPBACK)  # system CAs only
        check(await alone.fetch("ok.test", ["127.0.0.42"]), S.CERT_INVALID, "issuer")

    serve(port, test)


# ---------------------------------------------------------------- the network


def test_a_server_that_never_answers_times_out(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        silent = await servers.silent("127.0.0.43")
        await servers.https("127.0.0.44", pems.context("good"), ANSWERS)
        fetch = fetcher(pems, port)
        started = time.monotonic()
        result = await fetch.fetch("ok.test", ["127.0.0.43"])
        check(result, S.TIMEOUT, "TCP or TLS")
        assert result.transient
        assert silent.accepts == 1
        assert 0.9 < time.monotonic() - started < 1.9  # the connect bound
        # An HTTP answer that never comes: the whole bound.
        check(await fetch.fetch("slow.test", ["127.0.0.44"]), S.TIMEOUT, "whole answer")

    serve(port, test)


def test_an_answer_that_is_no_http(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.garbage("127.0.0.52", pems.context("good"))
        result = await fetcher(pems, port).fetch("ok.test", ["127.0.0.52"])
        check(result, S.PROTOCOL_ERROR)
        assert (result.transient, result.http_status, seen.accepts) == (False, None, 1)
        assert result.error.isprintable(), result.error

    serve(port, test)


def test_connect_refused_and_the_next_address(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.https("127.0.0.46", pems.context("good"), ANSWERS)
        fetch = fetcher(pems, port)
        refused = await fetch.fetch("ok.test", ["127.0.0.45"])  # nothing listens there
        check(refused, S.CONNECT_ERROR, "connect")
        assert refused.transient
        assert refused.address == "127.0.0.45"
        result = await fetch.fetch("ok.test", ["127.0.0.45", "127.0.0.46"])
        check(result, S.OK)
        assert (result.address, result.attempts, seen.accepts) == ("127.0.0.46", 1, 1)

    serve(port, test)


def test_transient_outcomes_are_tried_again(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.https("127.0.0.47", pems.context("good"), {"ok.test": Answer(503)})
        fetch = fetcher(pems, port, attempts=3, retry_backoff=0.01)
        result = await fetch.fetch("ok.test", ["127.0.0.47"])
        check(result, S.HTTP_ERROR, "HTTP 503")
        assert (result.attempts, result.transient, seen.accepts) == (3, True, 3)
        assert (fetch.stats.requests, fetch.stats.retries) == (3, 2)
        # A fact is not tried again.
        check(await fetch.fetch("d0.test", ["127.0.0.47"]), S.HTTP_ERROR, "404")
        assert seen.accepts == 4

    serve(port, test)


# ---------------------------------------------------------------- whom the scan may contact


def test_an_excluded_address_or_name_is_never_contacted(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.https("127.0.0.48", pems.context("good"), ANSWERS)
        for line in ("127.0.0.48/32", "ok.test", "mta-sts.ok.test"):
            exclusions = parse_exclusions([line]).exclusions
            policy = ContactPolicy(exclusions, LOOPBACK.allowed)
            result = await fetcher(pems, port, policy).fetch("ok.test", ["127.0.0.48"])
            check(result, S.BLOCKED, "exclusion list")
            assert (result.attempts, result.address, result.transient) == (0, "127.0.0.48", False)
        assert seen.accepts == 0

    serve(port, test)


def test_a_special_purpose_address_only_when_allowed(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        seen = await servers.https("127.0.0.49", pems.context("good"), ANSWERS)
        result = await fetcher(pems, port, ContactPolicy()).fetch("ok.test", ["127.0.0.49"])
        check(result, S.RESERVED, "special-purpose", "loopback")
        assert (result.attempts, seen.accepts) == (0, 0)
        check(await fetcher(pems, port).fetch("ok.test", ["127.0.0.49"]), S.OK)
        assert seen.accepts == 1

    serve(port, test)


def test_no_address(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        fetch = fetcher(pems, port)
        check(await fetch.fetch("ok.test", []), S.NO_ADDRESS, "mta-sts.ok.test")
        check(await fetch.fetch("ok.test", ["mail.ok.test"]), S.NO_ADDRESS, "not an IP")
        assert fetch.stats.requests == 0

    serve(port, test)


def test_one_connection_at_a_time_per_address(pems: Pems, port: int) -> None:
    async def test(servers: Servers) -> None:
        # Answers slower than the interval: only the gate keeps them apart.
        slow = {d: Answer(delay=0.25) for d in SHARED}
        crowded = await servers.https("127.0.0.50", pems.context("good"), slow)
        quick = await servers.https("127.0.0.51", pems.context("good"), ANSWERS)
        fetch = fetcher(pems, port, min_interval=0.1)
        jobs = [fetch.fetch(d, ["127.0.0.50"]) for d in SHARED]
        jobs += [fetch.fetch(d, ["127.0.0.51"]) for d in SHARED[:4]]
        started = time.monotonic()
        results = await asyncio.gather(*jobs)
        assert [r.status for r in results] == [S.OK] * 6 + [S.HTTP_ERROR] * 4  # 404s
        assert (crowded.accepts, crowded.max_active) == (6, 1)
        assert sorted(crowded.hosts) == [f"mta-sts.{d}" for d in SHARED]
        # Quick answers: the minimum interval keeps their starts apart.
        gaps = [b - a for a, b in zip(quick.starts, quick.starts[1:], strict=False)]
        assert len(gaps) == 3
        assert min(gaps) >= 0.09
        # One address's queue does not hold up another's.
        assert quick.starts[0] - started < 0.2
        assert fetch.open_connections == 0

    serve(port, test)


def test_the_interval_runs_from_when_each_connect_was_sent(pems: Pems, port: int) -> None:
    """The first request to an address waits for the only connection slot,
    held by a slow site; the next waits an interval from the first one's
    connect, not from the time the first was due."""

    async def test(servers: Servers) -> None:
        slow = {d: Answer(delay=0.25) for d in SHARED[:1]}
        await servers.https("127.0.0.52", pems.context("good"), slow)
        quick = await servers.https("127.0.0.53", pems.context("good"), ANSWERS)
        fetch = fetcher(pems, port, min_interval=0.3, max_connections=1)
        jobs = [fetch.fetch(SHARED[0], ["127.0.0.52"])]
        jobs += [fetch.fetch(d, ["127.0.0.53"]) for d in SHARED[1:4]]
        await asyncio.gather(*jobs)
        assert len(quick.accepted) == 3
        assert quick.accepted[0] - servers.seen["127.0.0.52"].accepted[0] >= 0.25
        gaps = [b - a for a, b in itertools.pairwise(quick.accepted)]
        # Both ends stamp on this event loop: only its scheduling lies between.
        assert min(gaps) >= 0.3 - 0.01

    serve(port, test)


def test_requests_go_where_the_attempts_send_them(pems: Pems, port: int) -> None:
    """Two fetchers (a cluster's tasks) that send their requests to a third
    (the address's owner): its gate holds for both, and each counts its own."""

    async def test(servers: Servers) -> None:
        slow = {d: Answer(delay=0.2) for d in SHARED}
        crowded = await servers.https("127.0.0.52", pems.context("good"), slow)
        owner = fetcher(pems, port)
        asked: list[tuple[str, str]] = []

        async def to_owner(host: str, address: str) -> Attempt:
            asked.append((host, address))
            return await owner.attempt(host, address)

        tasks = [fetcher(pems, port, requester=to_owner) for _ in range(2)]
        jobs = [tasks[i % 2].fetch(d, ["127.0.0.45", "127.0.0.52"]) for i, d in enumerate(SHARED)]
        results = await asyncio.gather(*jobs)
        assert [r.status for r in results] == [S.OK] * len(SHARED)
        assert [r.address for r in results] == ["127.0.0.52"] * len(SHARED)
        # Each domain: the refused address first, then the next one.
        assert sorted(asked) == sorted(
            (f"mta-sts.{d}", a) for d in SHARED for a in ("127.0.0.45", "127.0.0.52")
        )
        assert (crowded.accepts, crowded.max_active) == (len(SHARED), 1)
        assert [t.stats.requests for t in tasks] == [len(SHARED)] * 2
        assert [t.stats.fetches for t in tasks] == [len(SHARED) // 2] * 2
        assert owner.stats.fetches == 0
        assert all(r.elapsed_ms >= 200 for r in results)  # the owner's time of each

    serve(port, test)
