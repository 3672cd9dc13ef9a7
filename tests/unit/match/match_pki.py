"""Certificate chains for the matcher tests, generated with cryptography, the
TLSA records that pin them, and the matcher in one call (a helper module,
imported by name: pytest puts this folder on sys.path).

Keys are made once per kind and reused (RSA generation is slow); everything
else about a certificate can vary per test.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scanner.match.batch import CertPool
from scanner.match.dane import match_chain
from scanner.match.der import spki
from scanner.match.outcome import MatchResult
from scanner.tlsa import TlsaRecord

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KINDS = ("ec", "rsa", "ed25519")
NAMES = ["mx.example.com"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@functools.cache
def key(kind: str, index: int = 0) -> PrivateKey:
    """A private key of ``kind`` ("ec", "rsa", "ed25519"); the same one for the same index."""
    del index  # part of the cache key only
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)


def issue(
    cn: str,
    subject_key: PrivateKey,
    issuer: Issued | None = None,
    *,
    ca: bool | None = False,
    dns: Sequence[str] = (),
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=60),
    serial: int = 1000,
    signing_key: PrivateKey | None = None,
    issuer_cn: str | None = None,
    key_usage: x509.KeyUsage | None = None,
    server_eku: bool | None = None,
) -> Issued:
    """One certificate; self-signed when ``issuer`` is None.

    ``signing_key`` signs in place of the issuer's key (a broken signature);
    ``issuer_cn`` overrides the issuer name; ``ca=None`` leaves out basicConstraints.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    if issuer_cn is not None:
        issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])
    else:
        issuer_name = issuer.cert.subject if issuer else name
    signer = signing_key or (issuer.key if issuer else subject_key)
    public = subject_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if server_eku is not None:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_eku else ExtendedKeyUsageOID.CODE_SIGNING
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), subject_key)


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def chain(self) -> list[bytes]:
        """Leaf and intermediate, as most servers send them."""
        return [self.leaf.der, self.intermediate.der]

    @property
    def full_chain(self) -> list[bytes]:
        return [self.leaf.der, self.intermediate.der, self.root.der]


def make_pki(
    kind: str = "ec",
    names: Sequence[str] = ("mx.example.com",),
    *,
    leaf_cn: str | None = None,
    index: int = 0,
    leaf_kwargs: dict[str, object] | None = None,
    intermediate_kwargs: dict[str, object] | None = None,
) -> Pki:
    """Root -> intermediate -> leaf, all of ``kind`` keys."""
    root = issue("Test Root", key(kind, 3 * index), ca=True, serial=1)
    intermediate_args: dict[str, object] = {"ca": True, "serial": 2, **(intermediate_kwargs or {})}
    intermediate = issue("Test Issuer", key(kind, 3 * index + 1), root, **intermediate_args)  # type: ignore[arg-type]
    leaf_args: dict[str, object] = {"dns": names, "serial": 3, **(leaf_kwargs or {})}
    leaf_name = leaf_cn or (names[0] if names else "leaf")
    leaf = issue(leaf_name, key(kind, 3 * index + 2), intermediate, **leaf_args)  # type: ignore[arg-type]
    return Pki(root, intermediate, leaf)


def reissue_leaf(pki: Pki, **changes: object) -> Issued:
    """``pki``'s leaf (same name, key and issuer) issued again with ``changes`` to ``issue``."""
    name = pki.leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(name, str)
    return issue(name, pki.leaf.key, pki.intermediate, dns=[name], **changes)  # type: ignore[arg-type]


def rec(usage: int, selector: int, mtype: int, cert: Issued | bytes) -> TlsaRecord:
    """The record of ``usage`` that matches ``cert`` (RFC 6698 section 2.1)."""
    der = cert if isinstance(cert, bytes) else cert.der
    data = der if selector == 0 else spki(der)
    assert isinstance(data, bytes)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TlsaRecord(usage, selector, mtype, data)


def check(
    chain: Sequence[bytes],
    records: Sequence[TlsaRecord],
    names: Sequence[str] = NAMES,
    **kwargs: object,
) -> MatchResult:
    """The SMTP verdict at ``NOW``, with a fresh pool."""
    return match_chain(chain, records, names, NOW, CertPool(), **kwargs)  # type: ignore[arg-type]
