"""Domain names in the two forms the scanner writes them.

Absolute (RFC 1034 section 3.1): lower case with the root's trailing dot,
the form of every query, every cache key and every name the resolve stage
hands on. Relative: without the trailing dot, the form people, rows, SNI
(RFC 6066 section 3: "HostName" carries no trailing dot) and certificate
name matching (RFC 6125) use. A name crosses from one form to the other
here and nowhere else.
"""

from __future__ import annotations


def absolute(name: str) -> str:
    """``name`` in lower case, ending in the root's dot."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def relative(name: str) -> str:
    """``name`` without the root's dot, its case kept."""
    return name.rstrip(".")


def key(name: str) -> str:
    """The form two spellings of one name share: relative, lower case."""
    return relative(name).lower()
