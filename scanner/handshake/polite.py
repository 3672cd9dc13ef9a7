"""The rules of politeness towards the mail servers a scan touches, and of
its retries; scanner.handshake.handshaker applies them to every handshake.

- ``PoliteSettings``: at most ``per_address`` connections to one address at
  a time, connection starts to one address at least ``min_interval`` apart
  (longer for an address that said it had too many), at most
  ``max_connections`` in all, results kept for ``cache_size`` pairs;
- a transient outcome is tried again, up to ``attempts`` in all
  (``retry_plan``): a 4xx reply (RFC 5321 section 4.2.1) to the greeting or
  EHLO, which is how greylisting and connection limits answer, backs the
  whole address off: a 421 (section 3.8) doubles its interval, a
  greylisting reply waits out the window it names ("try again in 300
  seconds") or postgrey's default; a 454 to STARTTLS (RFC 3207 section 4)
  and a reset or an alert in the TLS handshake are tried again after a
  growing pause (``backoff``, the scan's one rule for trying again, DNS
  lookups included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.handshake.session import SessionResult
from scanner.handshake.smtp import Reply
from scanner.status import SmtpStatus


@dataclass(frozen=True, slots=True)
class PoliteSettings:
    """Limits on how the scan treats each server. Times in seconds."""

    # No defaults for what a scan sets: scanner.config.ScanConfig, which
    # builds these settings, is the one place those are set, so they cannot
    # drift apart. The fields after them are set here only.
    per_address: int
    min_interval: float
    max_connections: int
    cache_size: int
    # Sessions per (address, SNI name) at most, the first one included.
    attempts: int
    # The pause before trying again after a timeout, a reset or a 454; it
    # triples with each attempt.
    retry_backoff: float
    # A greylisting reply that names no window: postgrey's default delay.
    greylist_wait: float = 300.0
    # No pause is longer than this, whatever a server asks (spamd's 25 min pass).
    max_wait: float = 1800.0
    # An address that answered 421 gets twice its interval, up to this.
    max_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.per_address < 1 or self.max_connections < 1 or self.cache_size < 1:
            raise ValueError("per_address, max_connections and cache_size must be at least 1")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        waits = (self.min_interval, self.retry_backoff, self.greylist_wait, self.max_wait)
        if min(waits) < 0 or self.max_interval < self.min_interval:
            raise ValueError("waits must not be negative, max_interval not below min_interval")


@dataclass(frozen=True, slots=True)
class Retry:
    """When to try a (address, SNI name) pair again, and what the address owes."""

    wait: float  # seconds from now
    whole_address: bool  # every request to the address waits (a 4xx to the greeting)
    slow_down: bool  # the address said it had too many connections (421)


# "try again in 300 seconds", "retry in 5 minutes", "Greylisted for 60s".
_WINDOW = re.compile(r"(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?)\b", re.IGNORECASE)


def greylist_window(text: str) -> float | None:
    """The wait a greylisting reply names, in seconds, if it names one."""
    found = _WINDOW.search(text)
    if found is None:
        return None
    value = float(found.group(1))
    return value * 60 if found.group(2).lower().startswith("m") else value


def _refusal(result: SessionResult) -> Reply | None:
    """The transient (4xx) reply that ended the session, if one did."""
    transcript = result.transcript
    replies: tuple[Reply | None, ...]
    if result.status is SmtpStatus.BANNER_ERROR:
        # The refusal is the last greeting reply there is: banner, then EHLO, then HELO.
        replies = (transcript.helo, transcript.ehlo, transcript.banner)
    elif result.status is SmtpStatus.STARTTLS_REFUSED:
        replies = (transcript.starttls,)
    else:
        return None
    last = next((reply for reply in replies if reply is not None), None)
    return last if last is not None and last.severity == 4 else None


# A reset or an alert in the TLS handshake may not happen again; a server
# that let a whole session deadline pass mostly would, and waiting for it
# again costs another deadline: timeouts are not tried again.
_TRANSIENT = (SmtpStatus.TLS_ERROR,)


def is_transient(result: SessionResult) -> bool:
    """Whether the session ended in a way that may differ if tried again
    later (what ``retry_plan`` retries): a 4xx reply, a reset or an alert in
    the TLS handshake. A result that still is after its last attempt is
    recorded as transient, not as a fact about the server."""
    return result.status in _TRANSIENT or _refusal(result) is not None


def backoff(base: float, attempt: int, ceiling: float) -> float:
    """The pause after attempt number ``attempt``: ``base``, tripled at each
    attempt, at most ``ceiling``; the scan's one rule for trying again."""
    return min(ceiling, base * 3.0 ** (attempt - 1))


def retry_plan(result: SessionResult, attempt: int, polite: PoliteSettings) -> Retry | None:
    """Whether and when the session that ended as ``result`` (attempt number
    ``attempt``) is tried again; None when its outcome stands."""
    if attempt >= polite.attempts:
        return None
    growing = backoff(polite.retry_backoff, attempt, polite.max_wait)
    refusal = _refusal(result)
    if refusal is None:
        return Retry(growing, False, False) if result.status in _TRANSIENT else None
    if refusal.code == 421:
        return Retry(growing, True, True)
    if result.status is SmtpStatus.STARTTLS_REFUSED:
        return Retry(growing, False, False)
    # A 4xx to the greeting or EHLO other than 421: greylisting, per client.
    named = greylist_window(refusal.text)
    wait = named + 1.0 if named is not None else polite.greylist_wait * 5 ** (attempt - 1)
    return Retry(min(polite.max_wait, wait), True, False)
