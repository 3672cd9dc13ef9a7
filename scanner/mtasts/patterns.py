"""Which MX hosts an MTA-STS policy allows (RFC 8461 section 4.1).

An ``mx`` pattern is either a host name, matched exactly, or ``*.`` and a
suffix, whose wildcard stands for exactly one leftmost label: ``*.example.com``
matches ``mail.example.com`` but neither ``example.com`` nor
``foo.mail.example.com`` (s4.1). Names compare case-insensitively (DNS,
RFC 4343; IDNs are in A-label form on both sides) and a trailing dot, as
the resolve stage writes host names, does not count.
"""

from __future__ import annotations

from collections.abc import Sequence

from scanner.mtasts.policy import StsHostStatus


def _plain(name: str) -> str:
    return name.lower().removesuffix(".")


def matches(pattern: str, host: str) -> bool:
    """Whether ``host`` matches one ``mx`` pattern."""
    pattern, host = _plain(pattern), _plain(host)
    if pattern.startswith("*."):
        label, dot, suffix = host.partition(".")
        return bool(label) and bool(dot) and suffix == pattern[2:]
    return bool(host) and host == pattern


def allowed(patterns: Sequence[str], host: str) -> bool:
    """Whether the policy's ``mx`` patterns allow the MX host."""
    return any(matches(pattern, host) for pattern in patterns)


def allowed_hosts(patterns: Sequence[str], hosts: Sequence[str]) -> tuple[str, ...]:
    """The domain's MX hosts the policy allows, in the order given."""
    return tuple(host for host in hosts if allowed(patterns, host))


def host_status(patterns: Sequence[str], host: str, chain: StsHostStatus) -> StsHostStatus:
    """One MX host under a policy: not_allowed when no pattern matches it,
    otherwise what its captured chain says (scanner.mtasts.pkix); a host
    outside the patterns fails whatever its certificate (s4.1, s5.1)."""
    return chain if allowed(patterns, host) else StsHostStatus.NOT_ALLOWED
