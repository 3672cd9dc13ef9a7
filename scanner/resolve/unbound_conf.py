"""unbound.conf(5) for a survey: every setting next to the reason for its value.

The managed resolver (managed.py) recurses for millions of names on the real
internet from a machine of a few cores. Each setting is a ``Setting`` whose
``why`` is rendered as a comment above it, so the configuration a scan runs
with explains itself; a setting without a reason cannot be built. The figures
in the reasons are Unbound's documented defaults (unbound.conf(5) of 1.17.1,
Debian 12) or measurements on the internet testbed, which managed.py's
docstring lists.

RFCs behind the choices: RFC 7672 section 2.1 and RFC 4035 section 4.9.3
(the AD bit is trusted only from a validating resolver over a secure channel:
loopback), RFC 5452 section 9.2 (random source ports from a wide range),
RFC 2182 section 5 (a zone has two or more name servers, so a dead zone costs
the give-up time of each address), RFC 8914 (extended DNS errors), RFC 8198
(aggressive use of NSEC), RFC 9156 (query name minimisation, not used),
RFC 8767 (serving stale data, not used).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Unbound's timing, in milliseconds. UNKNOWN_SERVER_MS is the documented
# default of unknown-server-time-limit; MAX_RTT_MS is our infra-cache-max-rtt.
UNKNOWN_SERVER_MS = 376
MAX_RTT_MS = 3000

# Names Unbound 1.17 answers locally unless told not to (RFC 6761, RFC 8375).
SPECIAL_USE = ("test.", "invalid.", "localhost.", "onion.", "home.arpa.", "example.")

# Per thread, besides its UDP ports: the TCP buffers below, each a descriptor.
_TCP_OUT = 256
_TCP_IN = 64
# Descriptors Unbound needs besides its threads' (listening sockets, log, pipes).
_FD_RESERVE = 64
# Ports per thread: the most worth opening, and the least worth a thread.
_MAX_PORTS = 8192
_MIN_PORTS = 1024
_MAX_THREADS = 8


def dead_address_bound(max_rtt_ms: int = MAX_RTT_MS) -> float:
    """Seconds Unbound waits on one name server address that never answers.

    Its first wait is unknown-server-time-limit; each timeout doubles the
    wait, capped at infra-cache-max-rtt, and once the wait reaches the cap
    the address counts as down (for infra-host-ttl) and is not tried again.
    With a 3 s cap that is 0.376 + 0.752 + 1.504 + 3 s; a zone whose every
    address is dead gets its SERVFAIL after about this much per address.
    """
    total, wait = 0, UNKNOWN_SERVER_MS
    while True:
        total += min(wait, max_rtt_ms)
        if wait >= max_rtt_ms:
            return total / 1000
        wait *= 2


def total_wait(timeout: float, retries: int, backoff: float) -> float:
    """Seconds a DNS client with this schedule waits before it gives up."""
    return sum(timeout * backoff**attempt for attempt in range(retries + 1))


def last_send(timeout: float, retries: int, backoff: float) -> float:
    """Seconds after the first send that the client sends its last attempt."""
    return total_wait(timeout, retries - 1, backoff) if retries else 0.0


@dataclass(frozen=True, slots=True)
class Setting:
    """One option of a clause, its value(s), and why it has them.

    Several values give the option once per value (access-control, local-zone)
    under one comment."""

    name: str
    values: tuple[str, ...]
    why: str

    def __post_init__(self) -> None:
        if not self.why.strip():
            raise ValueError(f"{self.name}: every setting says why it has its value")
        if not self.values:
            raise ValueError(f"{self.name}: no value")

    def lines(self, indent: str = "  ") -> list[str]:
        comment = textwrap.wrap(
            " ".join(self.why.split()), width=78, initial_indent=f"{indent}# ",
            subsequent_indent=f"{indent}# ", break_on_hyphens=False,
        )  # fmt: skip
        return ["", *comment] + [f"{indent}{self.name}: {value}" for value in self.values]


def setting(name: str, value: str | int | Iterable[str], why: str) -> Setting:
    values = (str(value),) if isinstance(value, str | int) else tuple(value)
    return Setting(name, values, why)


def render(clause: str, settings: Sequence[Setting], notes: Sequence[str] = ()) -> str:
    """A clause of unbound.conf: comment lines from ``notes``, then each setting."""
    out = [f"{clause}:"]
    for note in notes:
        out += textwrap.wrap(
            " ".join(note.split()), width=78, initial_indent="  # ", subsequent_indent="  # "
        )
    for item in settings:
        out += item.lines()
    return "\n".join(out) + "\n"


def _power_of_two_at_least(n: int) -> int:
    power = 1
    while power < n:
        power *= 2
    return power


@dataclass(frozen=True, slots=True)
class Sizing:
    """How many threads, and how many ports and queries each, this machine allows."""

    threads: int
    slabs: int
    outgoing_range: int
    queries_per_thread: int

    @classmethod
    def for_machine(cls, cpus: int, nofile: int) -> Sizing:
        """From the CPUs the scan may use and the open-files limit Unbound can
        raise itself to (RLIMIT_NOFILE's hard limit)."""
        per_thread_fixed = _TCP_OUT + _TCP_IN
        budget = max(nofile - _FD_RESERVE, 0)
        threads = max(1, min(cpus, _MAX_THREADS, budget // (_MIN_PORTS + per_thread_fixed)))
        # A few ports even when the limit allows fewer: Unbound then opens
        # what it can, with a warning.
        ports = min(_MAX_PORTS, max(budget // threads - per_thread_fixed, 64))
        return cls(threads, _power_of_two_at_least(threads), ports, ports // 2)


def server_settings(
    *,
    workdir: Path,
    port: int,
    trust_anchor: Path,
    root_hints: Path | None,
    sizing: Sizing,
) -> list[Setting]:
    """The server clause of the managed Unbound."""
    slabs = sizing.slabs
    auto = trust_anchor.name == "root.key"
    anchor_option = "auto-trust-anchor-file" if auto else "trust-anchor-file"
    items = [
        # -- where it listens, and for whom --
        setting(
            "interface",
            "127.0.0.1",
            """RFC 7672 section 2.1 and RFC 4035 section 4.9.3: the scanner trusts the AD
            bit only over a secure channel, and loopback is one; nothing off this machine
            can reach the resolver.""",
        ),
        setting(
            "port",
            port,
            """A port free when the scan starts: no root needed for port 53, and two scans (or a
            system resolver) can run side by side.""",
        ),
        setting(
            "access-control",
            "127.0.0.0/8 allow",
            "The scanner's sockets; Unbound refuses every other client by default.",
        ),
        setting(
            "do-ip6",
            "yes",
            "The default: some zones have name servers only on IPv6.",
        ),
        setting(
            "username",
            '""',
            """Runs as the user who runs the scan: nothing to drop to, and the files below are
            that user's.""",
        ),
        setting("chroot", '""', "The private working folder is the only place it writes."),
        setting(
            "directory",
            f'"{workdir}"',
            "A temporary folder of its own, removed when the scan ends.",
        ),
        setting("pidfile", f'"{workdir}/unbound.pid"', "Not the system's /run/unbound.pid."),
        setting("use-syslog", "no", "The scan's resolver is not the system's: keep its log apart."),
        setting(
            "logfile",
            f'"{workdir}/unbound.log"',
            """Not stderr: that is a pipe the scanner reads only when Unbound fails to start,
            and a full pipe would stall Unbound.""",
        ),
        setting(
            "verbosity",
            0,
            """Errors only: at millions of names anything per query would be most of the disk
            traffic.""",
        ),
        # -- validation --
        setting(
            anchor_option,
            f'"{trust_anchor}"',
            """The root's trust anchor; a root.key is one unbound-anchor keeps (RFC 5011), a
            private root's DS is fixed.""",
        ),
        setting(
            "harden-dnssec-stripped",
            "yes",
            """The default, and essential for DANE (RFC 7672 section 2.1.1 tells bogus from
            insecure): a signed zone whose signatures went missing is bogus, or a stripped
            TLSA RRset would read as no DANE.""",
        ),
        setting(
            "harden-glue",
            "yes",
            """The default: glue out of a server's authority is not trusted (RFC 2181 section
            5.4.1).""",
        ),
        setting(
            "harden-below-nxdomain",
            "yes",
            """The default (RFC 8020): below a DNSSEC-secure NXDOMAIN nothing exists, and no
            query is sent.""",
        ),
        setting(
            "harden-referral-path",
            "no",
            """The default: validating every referral's NS set costs extra queries to every
            operator and is not standard.""",
        ),
        setting(
            "harden-algo-downgrade",
            "no",
            """The default, as RFC 6840 section 5.11 asks: a zone validates with any algorithm
            its DS lists, so a survey sees what validators in the field conclude.""",
        ),
        setting(
            "aggressive-nsec",
            "yes",
            """The default (RFC 8198): a name inside a signed NSEC gap is denied from cache,
            with no query.""",
        ),
        setting(
            "ede",
            "yes",
            """RFC 8914 extended errors say why an answer is SERVFAIL (bogus, no reachable
            authority, ...); the scanner records them. The default is no.""",
        ),
        setting(
            "val-log-level",
            2,
            """At 2 the EDE of a validation failure also carries Unbound's explanation, and the
            failure is logged (default 0).""",
        ),
        # -- threads and memory --
        setting(
            "num-threads",
            sizing.threads,
            """One per CPU the scan may use, as NLnet Labs' "Howto Optimise" advises, at most 8,
            and fewer if the open-files limit cannot give each at least 1024 ports.""",
        ),
        setting(
            "so-reuseport",
            "no",
            """The default (yes) gives each thread a socket of its own and the kernel picks one
            by the client's address and port, so the scanner's few sockets land unevenly,
            often all on one thread (managed.py). One shared socket lets whichever thread is
            free take the next query, as unbound.conf(5) says for extreme load.""",
        ),
        setting(
            "msg-cache-size",
            "128m",
            """Default 4m. A survey asks about each domain once, so the cache must hold a
            domain's answers only while the scanner works on it (at 5,000 domains a second,
            managed.py), besides the TLD and provider data that LRU keeps because it is asked
            for all the time.""",
        ),
        setting("msg-cache-slabs", slabs, "A power of 2 near num-threads (unbound.conf(5))."),
        setting(
            "rrset-cache-size",
            "256m",
            """Twice the message cache, as "Howto Optimise" advises (default 4m). Unbound's
            memory may reach 2 to 2.5 times the cache sizes.""",
        ),
        setting("rrset-cache-slabs", slabs, "A power of 2 near num-threads."),
        setting(
            "key-cache-size",
            "32m",
            """Default 4m: DNSKEYs of the signed zones in flight and of the TLDs, which stay
            hot.""",
        ),
        setting("key-cache-slabs", slabs, "A power of 2 near num-threads."),
        setting(
            "neg-cache-size",
            "4m",
            """Default 1m. Aggressive NSEC uses NSEC only, and most TLDs sign with NSEC3, so
            little of a survey is synthesised from it.""",
        ),
        # -- how long it tries (managed.py: the timeout story) --
        setting(
            "unknown-server-time-limit",
            UNKNOWN_SERVER_MS,
            "The default: the first wait for a server it has no round-trip time for yet.",
        ),
        setting(
            "infra-cache-max-rtt",
            MAX_RTT_MS,
            """Default 120000 ms, which keeps a question about a dead zone waiting much longer,
            the more so the more addresses it has (NLnetLabs/unbound#620, which is DANE for
            SMTP). A server's wait doubles from 376 ms at each timeout; at this cap it counts
            as down, so a dead address costs at most 0.376 + 0.752 + 1.504 + 3 s
            (dead_address_bound). A server that answers only after more than 3 s is lost, but
            round trips on the internet are far shorter.""",
        ),
        setting(
            "infra-keep-probing",
            "no",
            """The default. In 1.17 probing works only when infra-cache-max-rtt is 12000 ms or
            more (NLnetLabs/unbound#1241), and it would make every later query for a dead
            zone wait for a probe instead of getting its SERVFAIL at once.""",
        ),
        setting(
            "infra-host-ttl",
            900,
            """The default: a server found down stays down, for its zone, for 15 minutes, far
            longer than the scanner works on one domain, so asking again (the scanner retries
            a SERVFAIL) is answered at once. Round-trip times of provider zones stay known as
            long.""",
        ),
        setting(
            "infra-cache-numhosts",
            300_000,
            """Default 10000, a second of a survey: there is an entry per (server address, zone)
            contacted, a couple per domain. At 5,000 domains a second this remembers a server
            found down for as long as the scanner may wait on a question (30 s, managed.py).""",
        ),
        setting("infra-cache-slabs", slabs, "A power of 2 near num-threads."),
        setting(
            "outbound-msg-retry",
            5,
            """The default: sends per server of a delegation, timeouts and throwaway answers
            (REFUSED from a lame server) counted alike.""",
        ),
        setting(
            "max-sent-count",
            32,
            """The default: at most this many queries for one name between referrals, so a zone
            with many dead addresses still ends.""",
        ),
        setting(
            "discard-timeout",
            0,
            """Debian's 1.17.1-2+deb12u4 drops, unanswered, a reply that took longer than 1900
            ms (the DNSBomb fix). A dead zone's SERVFAIL, after seconds, would then never
            reach the scanner, which would record a timeout. Only this scan queries this
            resolver, over loopback, so nothing can be amplified: 0 turns it off.""",
        ),
        setting(
            "wait-limit",
            0,
            """Default 1000 replies waiting for recursion per client address, and every query of
            the scan comes from 127.0.0.1: beyond that many questions in flight Unbound drops
            the rest unanswered (managed.py). 0 turns it off.""",
        ),
        # -- sockets --
        setting(
            "outgoing-range",
            sizing.outgoing_range,
            """Ports per thread for queries in flight (default 4096 with libevent): as many as
            the open-files limit allows, at most 8192, as "Howto Optimise" advises.""",
        ),
        setting(
            "num-queries-per-thread",
            sizing.queries_per_thread,
            """Half of outgoing-range ("Howto Optimise"; default 1024). When full, Unbound drops
            queries that waited longer than jostle-timeout (200 ms): slow answers, the ones a
            survey must not lose.""",
        ),
        setting(
            "outgoing-num-tcp",
            _TCP_OUT,
            """Default 10 per thread. Name servers that truncate (large answers, response rate
            limiting with slip) are asked again over TCP, and a survey meets many at once.""",
        ),
        setting(
            "incoming-num-tcp",
            _TCP_IN,
            """Default 10 per thread. The scanner repeats over TCP each answer above its
            1232-octet EDNS size, one short connection per answer.""",
        ),
        setting(
            "so-rcvbuf",
            "4m",
            """Default 0 (the system's). The scanner sends hundreds of queries at once; the 4m
            unbound.conf(5) suggests holds a burst (beyond net.core.rmem_max only when run as
            root).""",
        ),
        setting("so-sndbuf", "4m", "The same for the burst of answers (default 0)."),
        setting(
            "edns-buffer-size",
            1232,
            """The default, the DNS Flag Day 2020 value: no fragmented UDP from name servers,
            TCP for anything larger.""",
        ),
        # -- behaviour towards name servers --
        setting(
            "qname-minimisation",
            "no",
            """Default yes (RFC 9156), a privacy measure for users' queries. A survey's
            questions are not private, and minimising costs up to one query per label below
            the zone cut (_25._tcp.<mx host> TLSA names) at every operator: fewer queries is
            the politer survey.""",
        ),
        setting(
            "prefetch",
            "no",
            """The default: refreshing popular answers before they expire costs about 10% more
            queries; a survey asks about each domain once.""",
        ),
        setting(
            "prefetch-key",
            "yes",
            """Fetches a signed zone's DNSKEY when its DS arrives instead of after the answer:
            no extra query (validation needs it), one round trip less (default no).""",
        ),
        setting(
            "serve-expired",
            "no",
            """The default (RFC 8767 off): a survey records what the DNS says now, never a stale
            answer.""",
        ),
        setting(
            "ratelimit",
            0,
            """The default (off). It counts queries per zone and answers SERVFAIL beyond the
            limit; in a survey the zones queried most are the TLDs, so it would turn domains
            into false dns_error. The scanner's --rate is the limit.""",
        ),
        setting(
            "ip-ratelimit",
            0,
            "The default (off): every query comes from the scanner's own address.",
        ),
    ]
    if root_hints is not None:
        items += [
            setting(
                "root-hints",
                f'"{root_hints}"',
                "A private root (the testbed) instead of the built-in root servers.",
            ),
            setting(
                "do-not-query-localhost",
                "no",
                """The private root's servers live on loopback addresses, which Unbound
                otherwise never asks.""",
            ),
            setting(
                "local-zone",
                (f'"{name}" nodefault' for name in SPECIAL_USE),
                """A private root may delegate names Unbound otherwise answers itself (RFC 6761,
                RFC 8375).""",
            ),
        ]
    return items


# No option: the default set of ports is the widest one that avoids
# IANA-assigned ports, which is what RFC 5452 section 9.2 asks for.
PORT_NOTES = (
    """outgoing-port-permit and outgoing-port-avoid keep their defaults: every port
    above 1024 that IANA has not assigned, the widest range that cannot take a
    port another daemon needs (RFC 5452 section 9.2: source ports as random as
    possible). Unbound's UDP ports do not compete with the scanner's TCP
    connections, which draw on another port space.""",
)


def unbound_conf(
    *,
    workdir: Path,
    port: int,
    trust_anchor: Path,
    root_hints: Path | None,
    sizing: Sizing,
) -> str:
    settings = server_settings(
        workdir=workdir, port=port, trust_anchor=trust_anchor, root_hints=root_hints,
        sizing=sizing,
    )  # fmt: skip
    header = "# Written by danescan (scanner/resolve/unbound_conf.py) for one scan.\n"
    return header + render("server", settings, PORT_NOTES)
