"""Fetching a domain's MTA-STS policy over HTTPS (RFC 8461 section 3.3),
as politely as the scan's SMTP handshakes; a thin asyncio driver around
aiohttp, the meaning of each answer being scanner.mtasts.response's.

``Fetcher.fetch(domain, addresses)`` asks
``https://mta-sts.<domain>/.well-known/mta-sts.txt``:

- at the addresses the caller resolved ``mta-sts.<domain>`` to, through the
  scan's own DNS client: aiohttp resolves nothing (a resolver pinned to the
  one address of each connection);
- each address screened first by the scan's contact policy
  (scanner.handshake.contact): an excluded one is ``blocked``, a
  special-purpose one not allowed ``reserved``, and no packet goes to it;
- at most ``per_address`` connections to one address at a time, their
  starts ``min_interval`` apart from when each connect is sent
  (scanner.handshake.pacing), at most ``max_connections`` in all (the
  scan's PoliteSettings, the SMTP side's limits);
- TLS verified by OpenSSL against the system's CA store plus the scan's
  ``--pkix-ca`` roots, for the name ``mta-sts.<domain>`` (section 3.3: "a
  valid PKIX certificate chain", RFC 6125 name checks); redirects never
  followed, the size and time bounded. OpenSSL reports the first error it
  finds, and it checks the name once the chain builds to a trusted root but
  before dates and signatures: ``cert_name_mismatch`` says the chain is
  anchored and the name wrong, so an expired certificate for another name
  is a name mismatch, an expired one for the right name ``cert_invalid``;
- the next address after a connect failure (refused, unreachable, no TCP or
  TLS within the connect bound); a transient outcome (section
  ``response.TRANSIENT``, HTTP 5xx and 429) tried again after
  ``polite.backoff``, at most ``polite.attempts`` rounds, like SMTP's
  ``--retries``.

The requests, one address at a time, go to the Fetcher's own ``attempt``
unless it is given others (a ``Requester``): a cluster's tasks send each to the
worker that owns the address, whose Fetcher alone connects to it.

Nothing a server or the network does raises out of ``fetch``: every
exception becomes a status and an error string; cancellation passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from scanner.handshake.contact import ContactPolicy
from scanner.handshake.pacing import StartPacer
from scanner.handshake.polite import PoliteSettings, backoff
from scanner.mtasts.response import (
    MAX_POLICY_BYTES,
    TRANSIENT,
    FetchResult,
    FetchStatus,
    judge_body,
    judge_head,
    quoted,
)

if TYPE_CHECKING:  # scanner.config imports the stages this package may meet
    from aiohappyeyeballs import AddrInfoType  # aiohttp's own dependency

    from scanner.config import ScanConfig

POLICY_PATH = "/.well-known/mta-sts.txt"  # section 3.3
# OpenSSL's verify codes for a chain that is valid but for other names.
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class PkixContextError(ValueError):
    """An extra CA file cannot be loaded; one line."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Bounds of one request. Times in seconds."""

    timeout: float = 30.0  # from the connection's start to the body's last byte
    connect_timeout: float = 10.0  # TCP and TLS: beyond it the next address is tried
    max_bytes: int = MAX_POLICY_BYTES
    port: int = 443
    user_agent: str = "danescan (MTA-STS survey)"

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0 or self.max_bytes < 0:
            raise ValueError("fetch timeouts must be positive, max_bytes not negative")


def pkix_context(extra: Iterable[Path] = ()) -> ssl.SSLContext:
    """A client context that verifies chains against the system's CA store
    and the ``extra`` PEM roots, and names (``check_hostname``)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for path in extra:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise PkixContextError(f"cannot load --pkix-ca {path}: {reason}") from None
    return context


def fetcher_for(
    config: ScanConfig, policy: ContactPolicy, requester: Requester | None = None
) -> Fetcher:
    """The fetcher of a scan: its politeness, its roots, its time bound;
    its requests sent to ``requester`` when given (see ``Requester``)."""
    settings = FetchSettings(timeout=config.timeout, connect_timeout=min(10.0, config.timeout))
    return Fetcher(
        pkix_context(config.pkix_ca),
        config.polite_settings,
        settings,
        policy=policy,
        requester=requester,
    )


@dataclass(frozen=True, slots=True)
class FetcherStats:
    """Counters since the fetcher was made."""

    fetches: int = 0  # domains asked for
    requests: int = 0  # connections asked for (here or of an owner), retries included
    retries: int = 0  # rounds after the first
    blocked: int = 0  # addresses refused by the contact policy


class _PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one connection: the address the scan resolved
    and screened, for its one host name, and nothing else."""

    def __init__(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self._host = host
        self._address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:  # never resolve a name the scan did not screen
            raise OSError(f"{host} is not {self._host}: not resolved")
        kind = socket.AF_INET6 if self._address.version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=str(self._address),
                port=port,
                family=kind,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request to one address, as the round over a domain's addresses sees it."""

    result: FetchResult
    connect_failed: bool  # no TCP or TLS session came about: the next address may
    spent: float = 0.0  # seconds from the connection's start to its end


# Where a Fetcher sends its requests, one address at a time: its own
# ``attempt`` by default; on a cluster, the worker that owns the address
# (scanner.cluster.route), so that the pacing of an address holds across
# the cluster, as the SMTP side's does.
Requester = Callable[[str, str], Awaitable[Attempt]]


class Fetcher:
    """One per scan and event loop: every policy fetch of the scan goes through it."""

    def __init__(
        self,
        context: ssl.SSLContext,
        polite: PoliteSettings,
        settings: FetchSettings | None = None,
        *,
        policy: ContactPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        requester: Requester | None = None,
    ) -> None:
        self._context = context
        self._requester = requester if requester is not None else self.attempt
        self._polite = polite
        self._settings = settings if settings is not None else FetchSettings()
        # Like the Handshaker's: no special-purpose address unless said so.
        self._policy = policy if policy is not None else ContactPolicy()
        self._clock = clock
        self._sleep = sleep
        self._global = asyncio.Semaphore(polite.max_connections)
        self._gates: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        # Bounded like the SMTP side's.
        self._pacer = StartPacer(polite.cache_size, clock, sleep)
        self._open = 0
        self._counts = dict.fromkeys(("fetches", "requests", "retries", "blocked"), 0)

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def stats(self) -> FetcherStats:
        return FetcherStats(**self._counts)

    async def fetch(self, domain: str, addresses: Sequence[str]) -> FetchResult:
        """The policy of ``domain`` (relative, A-labels), fetched from
        ``addresses`` (those of ``mta-sts.<domain>``), in their order."""
        self._counts["fetches"] += 1
        host = f"mta-sts.{domain}"
        targets: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        refused: FetchResult | None = None
        for text in addresses:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                refused = refused or FetchResult(
                    FetchStatus.NO_ADDRESS, f"not an IP address: {quoted(text)}"
                )
                continue
            refusal = self._policy.refusal(ip, (host, domain))
            if refusal is None:
                targets.append(ip)
            else:
                self._counts["blocked"] += 1
                status = FetchStatus(refusal.status.value)
                refused = refused or FetchResult(status, refusal.reason, address=str(ip))
        if not targets:
            return refused or FetchResult(FetchStatus.NO_ADDRESS, f"{host} has no address")
        return await self._rounds(host, targets)

    async def _rounds(
        self, host: str, targets: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]
    ) -> FetchResult:
        elapsed = 0.0
        attempt = 1
        while True:
            result, spent = await self._round(host, targets)
            elapsed += spent
            result = replace(result, attempts=attempt, elapsed_ms=round(elapsed * 1000))
            if not result.transient or attempt >= self._polite.attempts:
                return result
            self._counts["retries"] += 1
            await self._sleep(backoff(self._polite.retry_backoff, attempt, self._polite.max_wait))
            attempt += 1

    async def _round(
        self, host: str, targets: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]
    ) -> tuple[FetchResult, float]:
        """One try over the addresses: the next one only after a connect failure."""
        spent = 0.0
        outcome: Attempt | None = None
        for ip in targets:
            self._counts["requests"] += 1
            outcome = await self._requester(host, str(ip))
            spent += outcome.spent
            if not outcome.connect_failed:
                break
        assert outcome is not None  # targets is never empty
        return outcome.result, spent

    async def attempt(self, host: str, address: str) -> Attempt:
        """One request for ``host``'s policy to ``address`` (screened by the
        caller), when the address's politeness allows it."""
        ip = ipaddress.ip_address(address)
        async with self._slot(address):
            started = self._clock()
            outcome = await self._request(host, ip)
            return replace(outcome, spent=self._clock() - started)

    @contextlib.asynccontextmanager
    async def _slot(self, address: str) -> AsyncIterator[None]:
        # Waiting for the address (its other connections, its interval)
        # holds no connection slot; one is taken when the request is due.
        semaphore, users = self._gates.setdefault(
            address, (asyncio.Semaphore(self._polite.per_address), [0])
        )
        users[0] += 1
        interval = self._polite.min_interval
        try:
            async with semaphore:
                await self._pacer.turn(address, interval)
                async with self._global:
                    await self._pacer.due(address, interval)
                    self._open += 1
                    try:
                        yield
                    finally:
                        self._open -= 1
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._gates[address]

    async def _request(
        self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> Attempt:
        settings = self._settings
        port = None if settings.port == 443 else settings.port
        url = URL.build(scheme="https", host=host, port=port, path=POLICY_PATH)
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(host, ip),
            use_dns_cache=False,
            force_close=True,
            limit=1,
            ssl=self._context,
            socket_factory=self._socket_factory(str(ip)),
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout)
        try:
            async with aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
            ) as session:
                async with asyncio.timeout(settings.timeout):
                    result = await self._get(session, url)
            return Attempt(replace(result, address=str(ip)), False)
        except Exception as exc:  # every failure is data; CancelledError is no Exception
            return _failure(exc, str(ip))

    def _socket_factory(self, address: str) -> Callable[[AddrInfoType], socket.socket]:
        """aiohttp's socket for ``address``: made when the connect is sent
        (aiohappyeyeballs connects it with no await between), so the pacing's
        start is the connect's, not the slot's."""

        def make(info: AddrInfoType) -> socket.socket:
            family, kind, proto, _, _ = info
            made = socket.socket(family, kind, proto)
            self._pacer.began(address, self._polite.min_interval)
            return made

        return make

    async def _get(self, session: aiohttp.ClientSession, url: URL) -> FetchResult:
        limit = self._settings.max_bytes
        async with session.get(url, allow_redirects=False) as response:
            headers = response.headers
            verdict = judge_head(
                response.status,
                _header(headers.getall("Content-Type", [])),
                _header(headers.getall("Content-Length", [])),
                location=_header(headers.getall("Location", [])),
                content_encoding=_header(headers.getall("Content-Encoding", [])),
                limit=limit,
            )
            if verdict is not None:
                return verdict
            # At most one byte past the bound: enough to know it is over.
            data = bytearray()
            while len(data) <= limit:
                chunk = await response.content.read(limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            return judge_body(bytes(data), limit=limit)


def _header(values: list[str]) -> str | None:
    """One header's value; a repeated header as one list (which then fails
    the checks of a single value, as it should)."""
    return ", ".join(values) if values else None


def _failure(exc: Exception, address: str) -> Attempt:
    """What an exception from connecting, TLS or HTTP means."""

    def outcome(status: FetchStatus, error: str, connect_failed: bool = False) -> Attempt:
        result = FetchResult(status, error, address=address, transient=status in TRANSIENT)
        return Attempt(result, connect_failed)

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        code = getattr(cert, "verify_code", None)
        message = getattr(cert, "verify_message", None) or str(cert)
        status = (
            FetchStatus.CERT_NAME_MISMATCH if code in _NAME_MISMATCH else FetchStatus.CERT_INVALID
        )
        return outcome(status, f"{message} (X509 error {code})")
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return outcome(FetchStatus.TLS_ERROR, f"TLS handshake: {_reason(exc)}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return outcome(FetchStatus.TIMEOUT, "no TCP or TLS session within the bound", True)
    if isinstance(exc, TimeoutError):
        return outcome(FetchStatus.TIMEOUT, "no whole answer within the bound")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return outcome(FetchStatus.CONNECT_ERROR, f"connect: {_reason(exc.os_error)}", True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return outcome(FetchStatus.PROTOCOL_ERROR, "the server closed without a whole answer")
    if isinstance(exc, OSError):  # a reset after the handshake
        return outcome(FetchStatus.CONNECT_ERROR, _reason(exc))
    # A malformed answer (aiohttp's parser), or anything else a server made happen.
    return outcome(FetchStatus.PROTOCOL_ERROR, f"{type(exc).__name__}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    # aiohttp's parser quotes what the server sent: printable and bounded.
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in text[:200])
