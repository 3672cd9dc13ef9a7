"""Fast DER slicing for the matcher's hot path (no full X.509 parse).

TLSA selector 1 (RFC 6698 section 2.1.2) hashes the SubjectPublicKeyInfo
exactly as it appears in the certificate, so the matcher only needs the byte
range of that one field. A tiny walker over the outer TLV headers finds it in a
few microseconds, where parsing the whole certificate and re-encoding the key
costs several times more.

Malformed input never raises: :func:`spki` returns a :class:`DerError` instead.
The walker is strict DER for the headers it reads (definite, minimal lengths,
every element inside its parent) and checks that the slice itself is a
SEQUENCE of an AlgorithmIdentifier and a BIT STRING. It does not validate the
rest of the certificate: that is cryptography's job where the matcher needs it.

:func:`pem_certificates` turns PEM armour into the exact DER bytes it carries.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum

__all__ = ["DerError", "pem_certificates", "spki"]


class DerError(StrEnum):
    """Why no SubjectPublicKeyInfo could be sliced out of a certificate."""

    EMPTY = "empty"
    TRUNCATED = "truncated"  # a header or content runs past its container
    BAD_LENGTH = "bad_length"  # indefinite, non-minimal or over-long length
    UNEXPECTED_TAG = "unexpected_tag"  # not the certificate structure
    TRAILING_DATA = "trailing_data"  # bytes after the outer SEQUENCE


_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_VERSION = 0xA0  # [0] EXPLICIT, constructed


class _Malformed(Exception):
    def __init__(self, status: DerError) -> None:
        self.status = status


def _header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the TLV header at ``pos``: (tag, content start, content end)."""
    if pos + 2 > end:
        raise _Malformed(DerError.TRUNCATED)
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite form; more than 4 length bytes is never a cert.
        if count == 0 or count > 4:
            raise _Malformed(DerError.BAD_LENGTH)
        if pos + count > end:
            raise _Malformed(DerError.TRUNCATED)
        length = int.from_bytes(buf[pos : pos + count], "big")
        # DER: the shortest form, so no leading zero byte and no long form below 128.
        if length < 0x80 or buf[pos] == 0:
            raise _Malformed(DerError.BAD_LENGTH)
        pos += count
    stop = pos + length
    if stop > end:
        raise _Malformed(DerError.TRUNCATED)
    return tag, pos, stop


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _header(buf, pos, end)
    if got != tag:
        raise _Malformed(DerError.UNEXPECTED_TAG)
    return start, stop


def _spki(cert: bytes) -> bytes:
    total = len(cert)
    if total == 0:
        raise _Malformed(DerError.EMPTY)
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    start, stop = _expect(cert, 0, total, _SEQUENCE)
    if stop != total:
        raise _Malformed(DerError.TRAILING_DATA)
    # TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
    #                               issuer, validity, subject, subjectPublicKeyInfo, ... }
    pos, tbs_end = _expect(cert, start, stop, _SEQUENCE)
    tag, _, nxt = _header(cert, pos, tbs_end)
    if tag == _VERSION:
        pos = nxt
        tag, _, nxt = _header(cert, pos, tbs_end)
    if tag != _INTEGER:
        raise _Malformed(DerError.UNEXPECTED_TAG)
    pos = nxt
    for _ in range(4):  # signature AlgorithmIdentifier, issuer, validity, subject
        _, pos = _expect(cert, pos, tbs_end, _SEQUENCE)
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
    #                                     subjectPublicKey BIT STRING }
    key_start = pos
    inner, key_end = _expect(cert, pos, tbs_end, _SEQUENCE)
    _, inner = _expect(cert, inner, key_end, _SEQUENCE)
    _, inner = _expect(cert, inner, key_end, _BIT_STRING)
    if inner != key_end:
        raise _Malformed(DerError.UNEXPECTED_TAG)
    return cert[key_start:key_end]


def spki(cert: bytes) -> bytes | DerError:
    """The SubjectPublicKeyInfo of a DER certificate, byte for byte, or why not."""
    try:
        return _spki(cert)
    except _Malformed as exc:
        return exc.status


_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----\s*(.*?)\s*"
    rb"-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
    re.DOTALL,
)


def pem_certificates(text: bytes) -> list[bytes]:
    """The DER bytes of every PEM certificate block in ``text``, in order.

    Text between blocks is ignored (OpenSSL's test vectors put `subject=` lines
    there). A block whose base64 does not decode raises ValueError.
    """
    blocks = []
    for match in _PEM_BLOCK.finditer(text):
        body = b"".join(match.group(1).split())
        try:
            blocks.append(base64.b64decode(body, validate=True))
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in PEM certificate block {len(blocks) + 1}") from exc
    return blocks
