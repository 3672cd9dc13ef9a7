"""Text that remote parties control, made safe to show on a terminal.

SMTP banners and replies (RFC 5321 section 4.2 allows any octet but CR and
LF in a reply's text, and servers send what they like), error strings built
from them, certificate names and DNS names (RFC 2181 section 11: a label is
any octets) reach the user's terminal through ``scan check``, the progress
display and one-line messages. A terminal obeys what it is sent: ESC and the
8-bit CSI (0x9b) start control sequences (ECMA-48 section 5) that move the
cursor, recolour, retitle the window, write hyperlinks (OSC 8) or the
clipboard (OSC 52); CR and backspace overwrite what was printed; bidi
overrides (Unicode UAX #9: U+202A..U+202E, U+2066..U+2069) reorder it, so
that a line no longer reads as what it holds ("Trojan Source",
CVE-2021-42574). ``printable`` escapes all of these, so a mail server can
neither drive the terminal nor disguise what the scanner says.

Only the display is escaped: the dataset keeps every text as received.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

# Unicode general categories escaped: Cc (C0, DEL, C1 controls), Cf (format:
# bidi embeddings, overrides and isolates, zero-width characters, the BOM),
# Cs (lone surrogates, what errors="surrogateescape" makes of bytes that are
# not UTF-8: printing one raises UnicodeEncodeError), Zl and Zp (the line
# and paragraph separators, which break a line as LF does).
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# The usual short forms for the controls a reader recognises.
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with every control and format character written as an escape
    (``\\x1b``, ``\\x9b``, ``\\u202e``, ``\\r``): one line that shows what was
    received and does nothing to the terminal. Other text, non-ASCII letters
    included, is left as it is."""
    if text.isprintable():  # the common case: no category is unsafe
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE else ch for ch in text)


def _escape(ch: str) -> str:
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
