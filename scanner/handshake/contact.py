"""Whom a scan may contact: the one decision taken before any packet is sent.

Every SMTP connection of a scan, ``scan check`` and every retry included,
goes through the Handshaker, and the Handshaker asks the ContactPolicy
first. The policy refuses, in this order:

1. an address or name on the exclusion list (``--exclude FILE``,
   scanner.handshake.exclude): ``blocked``. Nothing overrides an exclusion;
2. a special-purpose address (RFC 6890, scanner.handshake.special: private,
   loopback, link-local, documentation, multicast, ...) outside the ranges
   the scan allows (``--allow-range CIDR``): ``reserved``. A scan of the real
   internet allows none; a scan of a private testbed allows the testbed's.

``contact_policy`` builds the policy from a ScanConfig; the pipeline and
``scan check`` both take theirs from it, so the two cannot disagree. Reading
the exclusion file there is the module's only I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.handshake.exclude import Exclusions, IPAddress, IPNetwork, parse_exclusions
from scanner.handshake.special import special_purpose
from scanner.status import SmtpStatus

if TYPE_CHECKING:  # scanner.config imports this module's users
    from scanner.config import ScanConfig


class ContactPolicyError(ValueError):
    """The policy cannot be built (an unreadable or bad exclusion file); one line."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an address is not contacted, as it is recorded."""

    status: SmtpStatus  # BLOCKED or RESERVED
    reason: str


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """The default contacts only globally reachable addresses, and excludes nothing."""

    exclusions: Exclusions = field(default_factory=Exclusions)
    # Special-purpose networks the scan may contact all the same. Kept as an
    # Exclusions value for its range lookup (IPv4-mapped addresses included);
    # its names are always empty.
    allowed: Exclusions = field(default_factory=Exclusions)

    @classmethod
    def build(
        cls, exclusions: Exclusions | None = None, allow: Iterable[IPNetwork | str] = ()
    ) -> ContactPolicy:
        networks = [parse_allow_range(n) if isinstance(n, str) else n for n in allow]
        return cls(exclusions or Exclusions(), Exclusions.build(networks))

    def refusal(self, address: IPAddress, names: Iterable[str] = ()) -> Refusal | None:
        """Why ``address`` (standing for ``names``: SNI, MX host, domain) must
        not be contacted; None when it may be."""
        if self.exclusions.is_excluded(address, names):
            return Refusal(SmtpStatus.BLOCKED, "on the exclusion list")
        special = special_purpose(address)
        if special is None or self.allowed.address_excluded(address):
            return None
        return Refusal(
            SmtpStatus.RESERVED,
            f"special-purpose address ({special.name}, {special.network}, {special.reference}):"
            " not contacted unless --allow-range allows it",
        )


def parse_allow_range(text: str) -> IPNetwork:
    """A network for ``--allow-range``: an address or a CIDR without host bits.

    Strict where the exclusion list is lenient: a mistyped prefix must not
    allow more than was meant (``10.1.2.3/8`` is refused, not read as 10/8).
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"--allow-range {text!r}: {exc}") from None


def contact_policy(config: ScanConfig) -> ContactPolicy:
    """The policy of a scan: its exclusion file read, its allowed ranges parsed."""
    return ContactPolicy.build(read_exclusions(config.exclude), config.allow_ranges)


def read_exclusions(path: Path | None) -> Exclusions | None:
    """The exclusion file's list; a file with any bad line is refused whole,
    since an operator's opt-out that was not understood must not be skipped."""
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ContactPolicyError(f"cannot read --exclude {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        # Not replaced and parsed on: an entry with a bad byte could be an
        # opt-out that would silently stop matching.
        raise ContactPolicyError(
            f"--exclude {path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start]:#04x})"
        ) from None
    parsed = parse_exclusions(lines)
    if parsed.bad_lines:
        bad = parsed.bad_lines[0]
        raise ContactPolicyError(
            f"{path}:{bad.line_no}: {bad.reason} ({len(parsed.bad_lines)} bad lines in all)"
        )
    return parsed.exclusions
