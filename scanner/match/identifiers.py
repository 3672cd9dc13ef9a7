"""Name checks: does a leaf certificate carry one of the reference identifiers? (pure)

RFC 7671 section 5 leaves name checks out for DANE-EE(3) (section 5.1; RFC
7672 section 3.1.1 makes that the rule for SMTP) and requires them with
DANE-TA(2) (section 5.2; RFC 7672 section 3.1.2). The rules are RFC 6125 section 6.4 as RFC 7672
section 3.2.3 sets them for SMTP:

- the presented identifiers are the SAN dNSNames; the subject CommonNames
  only when there is no dNSName (RFC 6125 section 6.4.4);
- comparison ignores case (section 6.4.1) and the reference identifier's
  trailing dot (``scanner.names.key``);
- a wildcard is the whole leftmost label of the pattern and matches exactly
  one label of letters, digits and hyphens, with at least two labels after it
  (section 6.4.3; no partial wildcards such as ``mx*.example.com``).

The reference identifiers themselves (TLSA base domain, MX host name, and for
an implicit MX the domain) are the policy's (``scanner.resolve.policy``).
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from scanner.match.certificates import CertInfo
from scanner.names import key as name_key

__all__ = ["host_matches"]

_LDH = frozenset(string.ascii_lowercase + string.digits + "-")


def _name_matches(pattern: str, ref: str) -> bool:
    if not pattern.isascii():
        return False
    pattern = pattern.lower()
    if pattern == ref:
        return True
    if not pattern.startswith("*."):
        return False
    rest = pattern[2:]
    # The wildcard is the whole leftmost label, with at least two labels after it.
    if "*" in rest or "." not in rest or not rest.strip("."):
        return False
    head, dot, tail = ref.partition(".")
    return bool(dot) and bool(head) and tail == rest and set(head) <= _LDH


def host_matches(info: CertInfo, names: Iterable[str]) -> str | None:
    """The first reference identifier the certificate matches (RFC 7672 section 3.2.3).

    SAN dNSNames are used when there is any; the subject CNs only otherwise.
    Comparison ignores case and a trailing dot on the reference identifier.
    """
    patterns = info.dns_names or info.common_names
    for name in names:
        ref = name_key(name)
        if ref and any(_name_matches(p, ref) for p in patterns):
            return name
    return None
