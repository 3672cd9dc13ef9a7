"""Normalising one input name into the form the scanner queries (pure).

Names go through IDNA 2008 with UTS 46 mapping (RFC 5891, UTS #46,
non-transitional), so ``Bücher.Example.`` becomes ``xn--bcher-kva.example``;
then the host-name rules of RFC 1123 section 2.1 and RFC 1035 section 2.3.4
apply: letters, digits and hyphens, labels of 1-63 octets that neither start
nor end with a hyphen, at most 253 octets in all, at least two labels, and a
top-level label that is not all digits (so an IPv4 address is not a domain).
Output is lower case, without the trailing dot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_MAX_NAME = 253
_MAX_INPUT = 1024


@dataclass(frozen=True, slots=True)
class Normalised:
    """A usable name (``domain``), or the reason the input is not one (``error``)."""

    domain: str | None
    error: str | None = None


def normalise(raw: str) -> Normalised:
    name = raw.strip()
    if not name:
        return Normalised(None, "empty name")
    if len(name) > _MAX_INPUT:
        return Normalised(None, f"name of {len(name)} characters is too long")
    if name.endswith("."):
        # One dot, the root's: not scanner.names.relative, which would take
        # "example.com.." (an empty label) for a name.
        name = name[:-1]
    if name.isascii():
        name = name.lower()
    else:
        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            return Normalised(None, f"not a valid internationalised name: {exc}")
    return _check_ldh(name)


def _check_ldh(name: str) -> Normalised:
    if len(name) > _MAX_NAME:
        return Normalised(None, f"name longer than {_MAX_NAME} octets")
    labels = name.split(".")
    if len(labels) < 2:
        return Normalised(None, "not a fully qualified domain name (one label)")
    for label in labels:
        if not label:
            return Normalised(None, "empty label")
        if not _LDH_LABEL.match(label):
            return Normalised(None, f"label {label[:70]!r} is not a valid host name label")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                return Normalised(None, f"label {label!r} is not valid punycode: {exc}")
    if labels[-1].isdigit():
        return Normalised(None, "top-level label is numeric (an address, not a domain)")
    return Normalised(name)
