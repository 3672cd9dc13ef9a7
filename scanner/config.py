"""The one frozen ScanConfig: built by the CLI, validated here, passed down.

Defaults are polite for the real internet (RFC 7672 section 8 asks nothing of
a scanner, but mail operators do): a modest rate, one connection per address
at a time with a pause between connections, an honest EHLO name.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from scanner import names
from scanner.handshake.contact import parse_allow_range
from scanner.handshake.polite import PoliteSettings
from scanner.handshake.session import SessionSettings
from scanner.ingest.normalise import normalise
from scanner.resolve.client import ResolverSettings, parse_server
from scanner.resolve.health import HealthSettings


class StartTlsMode(StrEnum):
    DANE = "dane"  # only hosts whose secure TLSA RRset needs checking
    ALL = "all"  # every MX host, for TLS statistics beyond DANE
    NONE = "none"  # DNS only


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    def owns(self, key: int) -> bool:
        """Whether the name with this ``scanner.seen.name_key`` is in
        this shard: stable across runs and machines (unlike hash())."""
        return key % self.count == self.index

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        try:
            return cls(int(index), int(count))
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None


@dataclass(frozen=True, slots=True)
class ScanConfig:
    input: str  # a path, or "-" for standard input
    # The dataset: a folder, or any location fsspec opens (scanner.output.store).
    output: str
    rate: float = 100.0  # domains admitted per second
    workers: int = 1
    resolvers: tuple[str, ...] = ()  # empty: start a managed Unbound
    trust_anchor: Path | None = None
    root_hints: Path | None = None
    allow_nonvalidating: bool = False
    secure_probe: str = "."  # a name whose answer must carry AD
    bogus_probe: str | None = "dnssec-failed.org."  # a name that must fail validation
    ehlo_name: str = ""
    exclude: Path | None = None
    # Special-purpose networks (RFC 6890) the scan may contact all the same,
    # as CIDRs: none for the internet, the testbed's for a testbed (its
    # testbed.json says which, under "scan_args"). scanner.handshake.contact.
    allow_ranges: tuple[str, ...] = ()
    # PEM files of roots trusted beside the system's for MTA-STS policy
    # fetches and PKIX checks (RFC 8461 section 3.3): a private testbed's
    # WebPKI root; none for the internet.
    pkix_ca: tuple[Path, ...] = ()
    # Beside DANE (issue 19): the _mta-sts and _smtp._tls lookups and the
    # MTA-STS policy fetch (off: --no-mta-sts); ``days_ahead``: also judge
    # every verdict that many days later (--days-ahead).
    mta_sts: bool = True
    days_ahead: int | None = None
    starttls: StartTlsMode = StartTlsMode.DANE
    timeout: float = 30.0  # whole SMTP session deadline, seconds
    max_mx: int = 10
    max_addresses: int = 4
    resume: bool = False
    shard: Shard | None = None
    quiet: bool = False
    log_json: Path | None = None
    # Domains and DNS queries in flight per process: the flow control
    # (scanner.flow) sizes both from the latency it measures to reach
    # ``rate``, within these bounds. The upper ones cap memory: a domain in
    # flight holds its task, its observation, its resolution and its share
    # of the DNS client's queries, about 4 kB measured (benchmarks/RESULTS.md),
    # so 20,000 of them about 80 MB. Equal bounds give a fixed window.
    min_domains_in_flight: int = 50
    max_domains_in_flight: int = 20_000
    min_queries_in_flight: int = 100
    max_queries_in_flight: int = 7_500  # 30,000 query IDs over 4 attempts (ResolverSettings)
    # Domains that wait for mail servers (parked while the handshaker paces
    # each address) per process: beyond this, admission waits. A parked
    # domain holds about as much as one in flight, and waits for minutes when
    # a crowded address or a greylisting window is in its way.
    max_parked: int = 50_000
    queue_size: int = 2000
    match_batch: int = 256
    part_rows: int = 20_000  # rows per part file
    part_bytes: int = 32 << 20  # ... or this many bytes of Arrow buffered
    part_seconds: float = 60.0  # ... or at most this long between part files
    per_address: int = 1
    min_interval: float = 1.0
    # Tries after the first for a transient outcome (a DNS timeout or a
    # SERVFAIL that is no validation failure, a 4xx or 421, a TLS reset):
    # sessions per (address, SNI name) and lookups per domain are at most
    # 1 + retries. Two: greylisting (postgrey, spamd) passes the second
    # session after its window, and a 421 from a connection limit or a reset
    # from an overloaded server has had two pauses (retry_backoff, then
    # three times it) to clear; a zone that failed three times minutes
    # apart is down, not unlucky, and a third retry would cost every dead
    # zone of a survey another resolver give-up.
    retries: int = 2
    retry_backoff: float = 10.0  # seconds, then tripled, before trying again
    retry_transient: bool = False  # with resume: redo the rows left transient
    # An outage of the resolver longer than this ends the scan as failed
    # (scanner.resolve.health); a restarted Unbound is back within seconds.
    resolver_patience: float = 300.0
    max_connections: int = 500
    # Caps that bound memory per worker process, never the input (DESIGN.md).
    # Measured per entry: a cached MX host ~0.55 kB on the testbed (allow
    # 2 kB for many addresses and TLSA records), a handshake ~3 kB (allow
    # 4 kB for a real chain and EHLO reply), a pooled certificate ~2 kB: at
    # most ~40 + 40 + 20 MB. Reuse comes from provider hosts, which stay hot
    # in an LRU: on the 100,000-domain testbed a 10,000-host cache has the
    # same hit count (117,435) as a 50,000-host one.
    host_cache_size: int = 20_000  # MX host -> addresses and TLSA RRset
    session_cache_size: int = 10_000  # (address, SNI) -> handshake
    cert_pool_size: int = 10_000  # certificates the matcher keeps digests of
    now_override: str | None = None  # ISO 8601, for reproducible tests
    # A Dask cluster to run the scan on (scanner.cluster): "tls://HOST:PORT"
    # of a scheduler, or "local:N" for N worker processes started here. Its
    # certificates: a folder from `scan cluster-certs` (ca.pem, client.pem,
    # client-key.pem); a local cluster makes throwaway ones.
    cluster: str | None = None
    cluster_certs: Path | None = None
    tasks: int | None = None  # tasks the input is split into; None: by its size

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("--rate must be positive")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.timeout <= 0:
            raise ValueError("--timeout must be positive")
        if self.max_mx < 1 or self.max_addresses < 1:
            raise ValueError("--max-mx and --max-addresses must be at least 1")
        for name in ("host_cache_size", "session_cache_size", "cert_pool_size", "part_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.min_domains_in_flight <= self.max_domains_in_flight:
            raise ValueError("need 1 <= min_domains_in_flight <= max_domains_in_flight")
        if not 1 <= self.min_queries_in_flight <= self.max_queries_in_flight:
            raise ValueError("need 1 <= min_queries_in_flight <= max_queries_in_flight")
        if self.max_parked < 1:
            raise ValueError("max_parked must be at least 1")
        if not 0 <= self.retries <= 10:
            raise ValueError("--retries must be between 0 and 10")
        if self.retry_backoff < 0 or self.resolver_patience <= 0:
            raise ValueError("--retry-backoff must not be negative, the patience positive")
        if self.retry_transient and not self.resume:
            raise ValueError("--retry-transient needs --resume: it redoes rows of an earlier scan")
        for server in self.resolvers:
            parse_server(server)
        if self.starttls is not StartTlsMode.NONE and not is_fqdn(self.ehlo_name):
            raise ValueError(
                f"EHLO name {self.ehlo_name!r} is not a fully qualified domain name: "
                "pass --ehlo-name with a real FQDN of this scanner"
            )
        if self.workers > 1 and self.shard is not None:
            raise ValueError("--workers and --shard cannot be combined")
        for cidr in self.allow_ranges:
            parse_allow_range(cidr)
        for pem in self.pkix_ca:
            if not (pem.is_file() and os.access(pem, os.R_OK)):
                raise ValueError(f"--pkix-ca {pem}: not a readable file")
        if self.cluster is not None:
            self._check_cluster(self.cluster)
        if self.days_ahead is not None and not 1 <= self.days_ahead <= 3650:
            raise ValueError("--days-ahead must be between 1 and 3650")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError("--tasks must be at least 1")

    def _check_cluster(self, cluster: str) -> None:
        if self.workers > 1 or self.shard is not None:
            raise ValueError("--cluster cannot be combined with --workers or --shard")
        if self.input == "-":
            raise ValueError("--cluster needs an input file (its tasks read their share of it)")
        scheme, sep, rest = cluster.partition("://")
        if cluster.startswith("local:"):
            count = cluster.removeprefix("local:")
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"--cluster {cluster!r}: expected local:N with N >= 1")
        elif not sep or not rest:
            raise ValueError(f"--cluster {cluster!r}: expected tls://HOST:PORT or local:N")
        elif scheme != "tls":
            raise ValueError(
                f"--cluster {cluster!r}: a scheduler runs whatever its clients send, so "
                "danescan talks to one only over TLS with certificates (tls://HOST:PORT "
                "and --cluster-certs; see the README)"
            )
        elif self.cluster_certs is None:
            raise ValueError("--cluster tls://... needs --cluster-certs DIR (scan cluster-certs)")
        elif not self.resolvers:
            raise ValueError(
                "--cluster tls://... needs --resolver: the validating resolver each "
                "worker host asks (a managed one runs on this machine only)"
            )

    @property
    def resolver_settings(self) -> ResolverSettings:
        # The flow control changes the client's in-flight limit as it goes.
        return ResolverSettings(
            servers=self.resolvers or ("127.0.0.1",), max_in_flight=self.min_queries_in_flight
        )

    @property
    def health_settings(self) -> HealthSettings:
        return HealthSettings(patience=self.resolver_patience)

    @property
    def session_settings(self) -> SessionSettings:
        return SessionSettings(
            ehlo_name=self.ehlo_name,
            connect_timeout=min(10.0, self.timeout),
            read_timeout=min(30.0, self.timeout),
            session_deadline=self.timeout,
        )

    @property
    def polite_settings(self) -> PoliteSettings:
        return PoliteSettings(
            per_address=self.per_address,
            min_interval=self.min_interval,
            max_connections=self.max_connections,
            cache_size=self.session_cache_size,
            attempts=1 + self.retries,
            retry_backoff=self.retry_backoff,
        )


def is_fqdn(name: str) -> bool:
    """A host name of at least two labels, already in normal form (RFC 1123 section 2.1)."""
    return bool(name) and normalise(name).domain == names.key(name)


def default_ehlo_name() -> str:
    """This machine's FQDN when it has a real one, else "" (then --ehlo-name is required)."""
    name = socket.getfqdn()
    return name if is_fqdn(name) and not name.startswith("localhost") else ""
