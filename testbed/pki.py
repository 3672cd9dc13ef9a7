"""Certificates for the simulated internet: roots, intermediates and leaves.

Chains look like the real ones DANE-TA and DANE-EE records pin (RFC 7671
section 5): a public-CA-like hierarchy (root, intermediate, leaf with a SAN
dNSName list, about 1-2 KB per certificate) in ECDSA P-256 and RSA-2048.

TLSA data is computed here from the certificates (RFC 6698 section 2.1:
selector 0 is the whole certificate, 1 the SubjectPublicKeyInfo; matching type
0 is the bytes, 1 SHA-256, 2 SHA-512), with cryptography and hashlib, never
with the scanner's matcher: the testbed is the ground truth the matcher is
checked against, and the one TLSA computation of the test suite and synth.

ECDSA keys are derived from the seed, so they (and every SPKI digest) are the
same for a given seed. RSA keys cannot be derived with `cryptography`; a small
pool is generated once per build and reused, since a 2048-bit key costs tens
of milliseconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_RSA_POOL = 6


class KeyType(StrEnum):
    ECDSA = "ecdsa-p256"
    RSA = "rsa-2048"


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def spki_der(self) -> bytes:
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(slots=True)
class Pki:
    """Issues certificates deterministically (up to RSA keys and ECDSA signatures)."""

    seed: int
    now: dt.datetime
    _ec_keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    _rsa_keys: list[rsa.RSAPrivateKey] = field(default_factory=list)
    _cas: dict[str, Issued] = field(default_factory=dict)

    def key(self, kind: KeyType, label: str) -> PrivateKey:
        """The key named ``label``: ECDSA derived from the seed, RSA from a small pool."""
        digest = hashlib.sha256(f"danescan-pki/{self.seed}/{label}".encode()).digest()
        if kind is KeyType.ECDSA:
            if label not in self._ec_keys:
                scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
                self._ec_keys[label] = ec.derive_private_key(scalar, ec.SECP256R1())
            return self._ec_keys[label]
        if not self._rsa_keys:
            self._rsa_keys = [
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                for _ in range(_RSA_POOL)
            ]
        return self._rsa_keys[digest[0] % _RSA_POOL]

    def ca(
        self,
        name: str,
        kind: KeyType,
        *,
        issuer: Issued | None = None,
        days_before: int = 400,
        days_after: int = 3650,
        organization: str = "danescan testbed",
    ) -> Issued:
        """A CA certificate; self-signed when ``issuer`` is None. Cached by name."""
        if name in self._cas:
            return self._cas[name]
        key = self.key(kind, f"ca/{name}")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        builder = (
            self._base(subject, key, days_before, days_after, f"ca/{name}")
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        issued = self._sign(builder, subject, key, issuer)
        self._cas[name] = issued
        return issued

    def leaf(
        self,
        names: Sequence[str],
        issuer: Issued,
        kind: KeyType,
        *,
        key_label: str,
        days_before: int = 30,
        days_after: int = 60,
        common_name: str | None = None,
    ) -> Issued:
        """A server certificate for ``names`` (SAN dNSNames); ``days_after`` < 0 is expired."""
        key = self.key(kind, f"leaf/{key_label}")
        cn = common_name if common_name is not None else (names[0] if names else key_label)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            self._base(subject, key, days_before, days_after, f"leaf/{key_label}/{','.join(names)}")
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        return self._sign(builder, subject, key, issuer)

    def _base(
        self, subject: x509.Name, key: PrivateKey, days_before: int, days_after: int, label: str
    ) -> x509.CertificateBuilder:
        serial = int.from_bytes(hashlib.sha256(f"{self.seed}/{label}".encode()).digest()[:15])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(key.public_key())
            .serial_number(serial | 1)
            .not_valid_before(self.now - dt.timedelta(days=days_before))
            .not_valid_after(self.now + dt.timedelta(days=days_after))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    @staticmethod
    def _sign(
        builder: x509.CertificateBuilder,
        subject: x509.Name,
        key: PrivateKey,
        issuer: Issued | None,
    ) -> Issued:
        signer = issuer.key if issuer is not None else key
        issuer_name = issuer.cert.subject if issuer is not None else subject
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        cert = builder.issuer_name(issuer_name).sign(signer, hashes.SHA256())
        return Issued(cert=cert, key=key)


def association(cert: Issued | bytes, selector: int, mtype: int) -> bytes:
    """The certificate association data of a TLSA record for ``cert`` (an
    Issued or DER bytes) with ``selector`` and matching type ``mtype``."""
    if isinstance(cert, Issued):
        data = cert.der if selector == 0 else cert.spki_der
    elif selector == 0:
        data = cert
    else:
        public = x509.load_der_x509_certificate(cert).public_key()
        data = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def tlsa_rdata(usage: int, selector: int, mtype: int, cert: Issued | bytes) -> str:
    """Presentation form "U S M HEX" of the record for ``cert``."""
    return f"{usage} {selector} {mtype} {association(cert, selector, mtype).hex()}"


def write_chain(pki_dir: Path, chain_id: str, chain: Sequence[Issued]) -> None:
    """Write ``<chain_id>.pem`` (leaf first) and ``<chain_id>.key`` (the leaf's key)."""
    pem = b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in chain)
    key = chain[0].key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (pki_dir / f"{chain_id}.pem").write_bytes(pem)
    key_path = pki_dir / f"{chain_id}.key"
    key_path.write_bytes(key)
    key_path.chmod(0o600)


def write_roots(path: Path, roots: Sequence[Issued]) -> None:
    """Write the certificates of ``roots`` as one PEM bundle (a CA file)."""
    path.write_bytes(b"".join(r.cert.public_bytes(serialization.Encoding.PEM) for r in roots))
