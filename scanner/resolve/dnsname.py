"""Domain names on the wire (RFC 1035 section 3.1 and 4.1.4) and in
presentation format (section 5.1).

Decoding follows compression pointers (section 4.1.4), each required to point
strictly backwards, so a pointer loop cannot exist, and caps a name at 255
octets (section 2.3.4). Decoded names are lower case and absolute (RFC 4034
section 6.2, RFC 4343: names compare case-insensitively), with the escapes
of section 5.1 for unusual octets, written as dnspython and BIND write them.
Encoding takes such text back to labels.
"""

from __future__ import annotations

from typing import Final, TypeAlias

# Octets written as themselves in presentation format (RFC 1035 section 5.1);
# anything else is escaped the way dnspython and BIND do it.
_SPECIAL: Final = b'"().;\\@$'
_PLAIN: Final = bytes(b for b in range(0x21, 0x7F) if b not in _SPECIAL)
_PLAIN_OR_DOT: Final = _PLAIN + b"."
# Each octet value as bytes: label lengths and 16-bit fields are joined from
# these (a method call such as int.to_bytes costs more than the rest).
OCTETS: Final = tuple(bytes((value,)) for value in range(256))


class FormError(Exception):
    """A malformed message: unwinds the codec's walk (parse_message turns it
    into a ``Malformed`` value; it never leaves the codec)."""


def _label_text(label: bytes) -> str:
    out = []
    for octet in label:
        if octet in _SPECIAL:
            out.append("\\" + chr(octet))
        elif 0x20 < octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)


def _label(wire: bytes, off: int) -> int:
    """What starts at ``off``: a label of this many octets (0: the root), or,
    as ``-1 - target``, a compression pointer (RFC 1035 section 4.1.4)."""
    # Also the bounds check for a label just read: a name goes on after it.
    if off >= len(wire):
        raise FormError("name runs past the end of the message")
    count = wire[off]
    if count < 0x40:
        return count
    if count < 0xC0:
        raise FormError(f"unknown label type 0x{count:02x}")
    if off + 1 >= len(wire):
        raise FormError("truncated compression pointer")
    return -1 - (((count & 0x3F) << 8) | wire[off + 1])


# Within one message, the decoded text and wire length of the name at each
# offset where a name started or a compression pointer led: the next pointer
# there (typically every owner name) is one dict lookup, not a walk.
Names: TypeAlias = dict[int, tuple[str, int]]


def read_name(wire: bytes, off: int, names: Names) -> tuple[str, int]:
    """Decode the name at ``off``; return it and the offset just past it."""
    first = _label(wire, off)
    if first < 0 and -1 - first < off:
        # The usual owner name: one pointer back to a name already read, a
        # lookup before any list is built for the walk below.
        known = names.get(-1 - first)
        if known is not None:
            return known[0], off + 2
    labels: list[bytes] = []
    # (offset, labels and octets read before it): the start, then each
    # pointer target
    hops = [(off, 0, 0)]
    end = -1
    octets = 0  # wire length of the labels read so far
    # A pointer must point before the previous one (or before the start of
    # the name): offsets then strictly decrease, so the walk terminates.
    limit = off
    tail, tail_length = ".", 1
    while True:
        count = _label(wire, off)
        if count == 0:
            off += 1
            break
        if count > 0:
            off += count + 1
            labels.append(wire[off - count : off])
            octets += count + 1
            continue
        target = -1 - count
        if target >= limit:
            raise FormError("compression pointer does not point backwards")
        if end < 0:
            end = off + 2
        known = names.get(target)
        if known is not None:
            tail, tail_length = known
            break
        hops.append((target, len(labels), octets))
        limit = off = target
    if end < 0:
        end = off
    if not labels:
        return tail, end
    wire_length = octets + tail_length
    if wire_length > 255:
        raise FormError("name longer than 255 octets")
    raw = b".".join(labels).lower()
    # Fast path: only plain octets, and the only dots are the separators.
    # Each label's text is then as long as its wire form with the length
    # octet, so a suffix's text starts at its octet offset.
    if not raw.translate(None, _PLAIN_OR_DOT) and raw.count(b".") == len(labels) - 1:
        head = raw.decode("ascii")
        text = head + "." if tail == "." else head + "." + tail
        for target, _, before in hops:
            names[target] = (text[before:] or ".", wire_length - before)
        return text, end
    escaped = [_label_text(label.lower()) for label in labels]
    head = ".".join(escaped)
    text = head + "." if tail == "." else head + "." + tail
    for target, index, before in hops:
        chars = index + sum(len(label) for label in escaped[:index])
        names[target] = (text[chars:] or ".", wire_length - before)
    return text, end


def skip_name(wire: bytes, off: int) -> int:
    """Step over a name without decoding it (owner of a record not kept)."""
    while True:
        count = _label(wire, off)
        if count < 0:
            return off + 2
        off += count + 1
        if count == 0:
            return off


def is_plain_name(name: str) -> bool:
    """Lower-case ASCII made only of octets that need no escape: the text of
    such a name is what decoding its wire form gives (what
    ``wire.parse_message`` needs of a ``known_name``)."""
    if not name.isascii() or name != name.lower():
        return False
    return not name.encode("ascii").translate(None, _PLAIN_OR_DOT)


def _unescape_labels(name: str) -> list[bytes]:
    labels: list[bytes] = []
    label = bytearray()
    i, size = 0, len(name)
    while i < size:
        char = name[i]
        if char == ".":
            labels.append(bytes(label))
            label.clear()
            i += 1
        elif char == "\\":
            digits = name[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise ValueError(f"escape \\{digits} out of range in {name!r}")
                label.append(value)
                i += 4
            elif i + 1 < size:
                label.extend(name[i + 1].encode("ascii"))
                i += 2
            else:
                raise ValueError(f"dangling backslash in {name!r}")
        else:
            label.extend(char.encode("ascii"))
            i += 1
    if label:
        labels.append(bytes(label))
    return labels


def encode_name(name: str) -> bytes:
    """Encode a presentation-format name (relative names are made absolute).

    Raises ValueError for names that cannot be sent: empty labels, labels over
    63 octets, names over 255 octets, non-ASCII text (IDNA is the caller's job).
    """
    if name in (".", ""):
        return b"\x00"
    try:
        if "\\" in name:
            labels = _unescape_labels(name)
        else:
            labels = name.removesuffix(".").encode("ascii").split(b".")
    except UnicodeEncodeError:
        raise ValueError(f"non-ASCII name {name!r}: convert it to IDNA first") from None
    # Joined once: appending to a bytearray label by label cost twice as much.
    parts: list[bytes] = []
    for label in labels:
        size = len(label)
        if not 0 < size <= 63:
            raise ValueError(f"label of {size} octets in {name!r}")
        parts.append(OCTETS[size])
        parts.append(label)
    parts.append(b"\x00")
    encoded = b"".join(parts)
    if len(encoded) > 255:
        raise ValueError(f"name of {len(encoded)} octets in {name!r}")
    return encoded
