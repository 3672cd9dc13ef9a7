"""The configuration of the testbed's DNS servers: NSD serving the zones
(authoritative only) and a validating Unbound (RFC 4033-4035) whose root
hints and trust anchor point at the private root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from testbed.dns.signing import ZoneJob
from testbed.dns.zones import address_type

PORT = 53


def nsd_conf_text(workdir: Path, address: str, zones: Sequence[ZoneJob], name: str = "nsd") -> str:
    six = ":" in address
    head = f"""# Written by testbed.dns: NSD serving the private tree.
server:
    ip-address: {address}
    port: {PORT}
    do-ip4: {"no" if six else "yes"}
    do-ip6: {"yes" if six else "no"}
    # One server process: Unbound, not NSD, is the bottleneck on two cores.
    server-count: 1
    tcp-count: 256
    username: ""
    chroot: ""
    zonesdir: "{workdir}"
    # No compiled database, no zone file writes, no mtime checks: faster start.
    database: ""
    zonefiles-check: no
    zonefiles-write: 0
    zonelistfile: "{workdir}/{name}.zonelist"
    xfrdfile: "{workdir}/{name}.xfrd.state"
    xfrdir: "{workdir}"
    pidfile: "{workdir}/{name}.pid"
    # The only client is our Unbound: response rate limiting would starve a scan.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    rrl-size: 1
    receive-buffer-size: 4194304
    send-buffer-size: 4194304
    hide-version: yes
    verbosity: 1

remote-control:
    control-enable: no
"""
    body = "".join(
        f'\nzone:\n    name: "{job.zone.origin}"\n    zonefile: "{job.served}"\n' for job in zones
    )
    return head + body


def root_hints_text(auth_address: str) -> str:
    return f". 3600000 IN NS ns1.\nns1. 3600000 IN {address_type(auth_address)} {auth_address}\n"


# How Unbound times out its servers, per profile (the text goes into unbound.conf).
_LOOPBACK_TIMING = """\
    # A lame delegation (nothing listens) would otherwise cost about 40 s of
    # retries, and Unbound drops the client's query unanswered after 1.9 s
    # (discard-timeout): after one timeout a server is down for that zone and
    # the answer is a quick SERVFAIL. Loopback servers answer in well under a
    # millisecond, and keep-probing lets one that was merely overloaded back in.
    infra-cache-max-rtt: 700
    infra-keep-probing: yes
"""
_INTERNET_TIMING = """\
    # The internet profile's operators answer in up to a few hundred ms with
    # a tail to seconds, and lose queries. Unbound backs a server's timeout
    # off from 376 ms, doubling it at each loss, and gives up on the server
    # once it would exceed this ceiling: 3 s gives a dead operator's zones a
    # SERVFAIL after 0.376 + 0.752 + 1.5 + 3 s, about 5.6 s, as the
    # scanner's managed Unbound does (scanner.resolve.managed); Unbound's
    # default (120 s) would hold such a question for minutes. (1.17 probes a
    # server it gave up on only with a ceiling of 12 s or more:
    # NLnetLabs/unbound#1241.)
    infra-cache-max-rtt: 3000
    # Unbound drops, unanswered, a reply that took longer than this (1.9 s
    # by default, against DNSBomb): a dead operator's SERVFAIL must reach
    # the client, as a resolver of the real internet's does within seconds.
    discard-timeout: 15000
    # ... and drops a client's questions beyond 1,000 waiting for recursion
    # (the same fix): a scanner's client has thousands in flight when every
    # answer takes a round trip to an operator. 0: no such limit.
    wait-limit: 0
"""


def unbound_conf_text(
    workdir: Path,
    *,
    resolver_address: str,
    auth_address: str,
    root_hints: Path,
    trust_anchor: Path,
    tlds: Sequence[str],
    internet: bool = False,
) -> str:
    six = ":" in auth_address or ":" in resolver_address
    # Unbound answers some special-use TLDs itself (RFC 6761: test., invalid.,
    # localhost.; RFC 7686: onion.). nodefault hands them back to the root;
    # for any other name it does nothing, so it is applied to every TLD.
    nodefault = "".join(f'    local-zone: "{tld}" nodefault\n' for tld in tlds)
    return f"""# Written by testbed.dns: a validating resolver for the private root.
server:
    interface: {resolver_address}
    port: {PORT}
    interface-automatic: no
    do-ip4: yes
    do-ip6: {"yes" if six else "no"}
    access-control: 127.0.0.0/8 allow
    access-control: ::1 allow
    username: ""
    chroot: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    logfile: ""
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    module-config: "validator iterator"
    root-hints: "{root_hints}"
    trust-anchor-file: "{trust_anchor}"
    trust-anchor-signaling: no
    root-key-sentinel: no
    # The servers are on 127.0.0.0/8, which Unbound would otherwise never ask.
    do-not-query-localhost: no
{nodefault}    # Report why an answer is bogus (extended DNS errors, RFC 8914).
    ede: yes
    val-log-level: 2
    log-servfail: yes
    # Tuned for a scan: about a million names, thousands of queries in flight.
    num-threads: 2
    msg-cache-slabs: 2
    rrset-cache-slabs: 2
    infra-cache-slabs: 2
    key-cache-slabs: 2
    msg-cache-size: 512m
    rrset-cache-size: 1024m
    key-cache-size: 128m
    neg-cache-size: 64m
    num-queries-per-thread: 4096
    outgoing-range: 8192
    incoming-num-tcp: 256
    outgoing-num-tcp: 128
    so-rcvbuf: 4m
    so-sndbuf: 4m
    # Every delegation carries its glue: no extra queries for name server
    # addresses, and no query minimisation (a scan wants fewer round trips).
    target-fetch-policy: "0 0 0 0 0"
    qname-minimisation: no
    prefetch: no
{_INTERNET_TIMING if internet else _LOOPBACK_TIMING}
remote-control:
    control-enable: no
"""
