"""The one zone key of the testbed's DNS tree, and what is derived from it.

Every signed zone uses the same ECDSA P-256 key (algorithm 13, RFC 6605) as a
combined signing key (flags 257, SEP bit set: RFC 4034 section 2.1.1), derived
from the seed. So every DS (RFC 4034 section 5.1.4, SHA-256 digest type 2 per
RFC 4509) and the root trust anchor are known before anything is signed, and
all zones can be signed at the same time. The key tag is RFC 4034 appendix B;
the private-key file is the BIND format ldns-signzone reads.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = 13  # ECDSAP256SHA256, RFC 6605
DIGEST_SHA256 = 2  # RFC 4509
CSK_FLAGS = 257  # zone key + secure entry point: the one key signs everything
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """The ECDSA P-256 key shared by all signed zones."""

    private_value: int
    public_key: bytes  # x || y, 64 bytes (RFC 6605 section 4)

    @property
    def dnskey_rdata(self) -> bytes:
        return struct.pack("!HBB", CSK_FLAGS, 3, ALGORITHM) + self.public_key

    @property
    def dnskey_text(self) -> str:
        return f"{CSK_FLAGS} 3 {ALGORITHM} {base64.b64encode(self.public_key).decode()}"

    @property
    def key_tag(self) -> int:
        """RFC 4034 appendix B."""
        acc = 0
        for i, byte in enumerate(self.dnskey_rdata):
            acc += byte if i & 1 else byte << 8
        acc += (acc >> 16) & 0xFFFF
        return acc & 0xFFFF

    @property
    def base_name(self) -> str:
        """The file name stem ldns-signzone expects (BIND convention)."""
        return f"Kdanescan+{ALGORITHM:03d}+{self.key_tag:05d}"

    def ds_digest(self, owner: str) -> bytes:
        """SHA-256 over the owner's canonical wire name and the DNSKEY RDATA."""
        return hashlib.sha256(wire_name(owner) + self.dnskey_rdata).digest()

    def ds_text(self, owner: str, *, wrong: bool = False) -> str:
        """DS RDATA in presentation format. ``wrong`` flips the digest's first
        byte: the key tag and algorithm still point at the child's key, so the
        resolver tries it and finds the mismatch (bogus, not insecure)."""
        digest = bytearray(self.ds_digest(owner))
        if wrong:
            digest[0] ^= 0xFF
        return f"{self.key_tag} {ALGORITHM} {DIGEST_SHA256} {digest.hex().upper()}"

    def private_file_text(self) -> str:
        """The BIND private-key format that ldns-signzone reads."""
        scalar = base64.b64encode(self.private_value.to_bytes(32, "big")).decode()
        return (
            "Private-key-format: v1.3\n"
            f"Algorithm: {ALGORITHM} (ECDSAP256SHA256)\n"
            f"PrivateKey: {scalar}\n"
        )


def derive_key(seed: int) -> ZoneKey:
    """The zone key for ``seed``: the same seed always gives the same key."""
    material = hashlib.sha256(b"danescan-testbed-key" + str(seed).encode()).digest()
    private_value = int.from_bytes(material, "big") % _P256_ORDER
    if private_value == 0:  # probability 2**-256, but zero is not a key
        private_value = 1
    numbers = ec.derive_private_key(private_value, ec.SECP256R1()).public_key().public_numbers()
    return ZoneKey(private_value, numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big"))


def wire_name(name: str) -> bytes:
    """Uncompressed wire format of an absolute, lower-case name (RFC 1035 section 3.1)."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"
