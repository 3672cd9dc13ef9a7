"""X.509 for the matcher: parsed certificates, issuer links, signatures, purposes (pure).

What the DANE-TA path checks of :mod:`scanner.match.dane` need from a
certificate (RFC 5280 section 4.1 fields, the extensions of section 4.2:
subject and authority key identifiers, basicConstraints, keyUsage,
extendedKeyUsage, subjectAltName), read once into a :class:`CertInfo`.

The checks follow OpenSSL, whose DANE verifier the matcher agrees with:
issuer names compare case- and space-folded (``X509_NAME_cmp``), an AKID must
name the issuer's key (``X509_check_akid``), a certificate can be a CA as
``X509_check_ca`` says and can serve a TLS server as
``X509_PURPOSE_SSL_SERVER`` says (RFC 5280 sections 4.2.1.3, 4.2.1.9 and
4.2.1.12). Signatures are checked with cryptography, RSA (PKCS#1 v1.5 and
PSS), ECDSA, EdDSA and DSA.

Everything here is derived from certificate bytes, so the matcher asks a
:class:`CertSource` for it, which ``scanner.match.batch.CertPool`` memoises.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertInfo",
    "CertSource",
    "cert_info",
    "check_ca",
    "likely_issued",
    "purpose_problem",
    "spki_parses",
    "time_ok",
    "verify_issued",
    "verify_with_spki",
]


@dataclass(frozen=True, slots=True, eq=False)
class CertInfo:
    """What the chain checks need from one parsed certificate."""

    der: bytes
    cert: x509.Certificate
    subject: tuple[tuple[tuple[str, object], ...], ...]  # canonical, for name chaining
    issuer: tuple[tuple[tuple[str, object], ...], ...]
    serial: int
    v1: bool
    not_before: datetime
    not_after: datetime
    ski: bytes | None
    aki_keyid: bytes | None
    aki_serial: int | None
    ca: bool | None  # basicConstraints cA, None without the extension
    path_length: int | None
    key_usage: x509.KeyUsage | None
    ext_key_usage: frozenset[str] | None  # dotted OIDs
    dns_names: tuple[str, ...]
    common_names: tuple[str, ...]
    extension_error: str | None  # the extensions could not be parsed

    @property
    def self_issued(self) -> bool:
        """Subject equals issuer and the AKID (if any) names the own key (EXFLAG_SI)."""
        return self.subject == self.issuer and _akid_ok(self, self)

    @property
    def self_signed(self) -> bool:
        """Self-issued and allowed to sign certificates (OpenSSL's EXFLAG_SS)."""
        return self.self_issued and (self.key_usage is None or self.key_usage.key_cert_sign)


def _canon_value(value: object) -> object:
    if isinstance(value, str):
        return " ".join(value.split()).lower()
    return value


def _canon_name(name: x509.Name) -> tuple[tuple[tuple[str, object], ...], ...]:
    """Names compared as OpenSSL's X509_NAME_cmp does, near enough: case and spacing folded."""
    return tuple(
        tuple(sorted(((a.oid.dotted_string, _canon_value(a.value)) for a in rdn), key=repr))
        for rdn in name.rdns
    )


def cert_info(der: bytes) -> CertInfo | None:
    """Parse a DER certificate into a CertInfo, or None if cryptography cannot read it."""
    try:
        with warnings.catch_warnings():
            # A serial number that is not positive breaks RFC 5280 section
            # 4.1.2.2 but is seen on real servers, and OpenSSL (whose DANE
            # the matcher follows) reads it: a fact about the chain, not a
            # fault of the scanner's to warn about.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            serial = cert.serial_number
        subject = _canon_name(cert.subject)
        issuer = _canon_name(cert.issuer)
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
        v1 = cert.version == x509.Version.v1
        common_names = tuple(
            str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    # cryptography's answers to malformed input, an outcome, not a crash:
    # mostly ValueError, but InvalidVersion for a version other than v1 or v3,
    # and TypeError for a name attribute whose string type its OID forbids
    # (a BIT STRING that is not an x500UniqueIdentifier), raised when the
    # subject or issuer is first read.
    except (ValueError, TypeError, x509.InvalidVersion):
        return None
    ski = aki_keyid = None
    aki_serial = ca = path_length = key_usage = ext_key_usage = None
    dns_names: tuple[str, ...] = ()
    extension_error = None
    try:
        for ext in cert.extensions:
            value = ext.value
            if isinstance(value, x509.SubjectKeyIdentifier):
                ski = value.digest
            elif isinstance(value, x509.AuthorityKeyIdentifier):
                aki_keyid = value.key_identifier
                aki_serial = value.authority_cert_serial_number
            elif isinstance(value, x509.BasicConstraints):
                ca, path_length = value.ca, value.path_length
            elif isinstance(value, x509.KeyUsage):
                key_usage = value
            elif isinstance(value, x509.ExtendedKeyUsage):
                ext_key_usage = frozenset(oid.dotted_string for oid in value)
            elif isinstance(value, x509.SubjectAlternativeName):
                dns_names = tuple(value.get_values_for_type(x509.DNSName))
    # TypeError: a directory name in an extension with the attribute fault above.
    except (
        ValueError,
        TypeError,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        extension_error = f"{type(exc).__name__}: {exc}"
    return CertInfo(
        der=der,
        cert=cert,
        subject=subject,
        issuer=issuer,
        serial=serial,
        v1=v1,
        not_before=not_before,
        not_after=not_after,
        ski=ski,
        aki_keyid=aki_keyid,
        aki_serial=aki_serial,
        ca=ca,
        path_length=path_length,
        key_usage=key_usage,
        ext_key_usage=ext_key_usage,
        dns_names=dns_names,
        common_names=common_names,
        extension_error=extension_error,
    )


def _verify_with_key(cert: x509.Certificate, key: object) -> bool:
    """Check a certificate's signature with a public key (RSA, PSS, ECDSA, EdDSA, DSA)."""
    signature, tbs = cert.signature, cert.tbs_certificate_bytes
    try:
        params = cert.signature_algorithm_parameters
        digest = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            if not isinstance(params, padding.PKCS1v15 | padding.PSS) or digest is None:
                return False
            key.verify(signature, tbs, params, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(signature, tbs, params)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, tbs)
        elif isinstance(key, dsa.DSAPublicKey) and isinstance(digest, hashes.HashAlgorithm):
            key.verify(signature, tbs, digest)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def verify_issued(child: CertInfo, issuer: CertInfo) -> bool:
    """Does ``issuer``'s key verify ``child``'s signature?"""
    try:
        child.cert.verify_directly_issued_by(issuer.cert)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography compares issuer names exactly; the chain builder already
        # matched them as OpenSSL does (case-folded), so check the key alone.
        try:
            key = issuer.cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            return False
        return _verify_with_key(child.cert, key)
    return True


def verify_with_spki(child: CertInfo, spki: bytes) -> bool:
    """Does the bare key (DER SubjectPublicKeyInfo) verify ``child``'s signature?"""
    try:
        key = load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return _verify_with_key(child.cert, key)


@lru_cache(maxsize=1024)
def spki_parses(spki: bytes) -> bool:
    try:
        load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


class CertSource(Protocol):
    """Everything derived from certificate bytes, memoised by the implementation."""

    def digest(self, der: bytes, selector: int, mtype: int) -> bytes | None:
        """Selector data of ``der`` under matching type ``mtype`` (None if unreadable)."""
        ...

    def info(self, der: bytes) -> CertInfo | None:
        """The parsed view of ``der`` (None if unreadable)."""
        ...

    def issued_by(self, child: CertInfo, issuer: CertInfo) -> bool:
        """Whether ``issuer`` signed ``child``."""
        ...

    def signed_by_key(self, child: CertInfo, spki: bytes) -> bool:
        """Whether the bare key signed ``child``."""
        ...


def _akid_ok(issuer: CertInfo, subject: CertInfo) -> bool:
    """X509_check_akid: the subject's AKID, where present, must name the issuer's key."""
    if subject.aki_keyid is not None and issuer.ski is not None and subject.aki_keyid != issuer.ski:
        return False
    return subject.aki_serial is None or subject.aki_serial == issuer.serial


def likely_issued(issuer: CertInfo, subject: CertInfo) -> bool:
    """Could ``issuer`` have issued ``subject`` (names and key identifiers, not the signature)?"""
    return issuer.subject == subject.issuer and _akid_ok(issuer, subject)


def time_ok(info: CertInfo, now: datetime) -> bool:
    """X509_cmp_time: valid from notBefore inclusive, expired at notAfter."""
    return info.not_before <= now < info.not_after


def check_ca(info: CertInfo) -> int:
    """X509_check_ca: 1 for cA=TRUE, 3 for a v1 self-signed root, 4 for keyCertSign only, else 0."""
    if info.key_usage is not None and not info.key_usage.key_cert_sign:
        return 0
    if info.ca is not None:
        return 1 if info.ca else 0
    if info.v1 and info.self_signed:
        return 3
    if info.key_usage is not None and info.key_usage.key_cert_sign:
        return 4
    return 0


_SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
_SGC = frozenset({"2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"})  # Netscape and Microsoft SGC


def purpose_problem(info: CertInfo, ca: bool) -> str | None:
    """X509_PURPOSE_SSL_SERVER, as OpenSSL checks it (without Netscape cert types)."""
    eku = info.ext_key_usage
    if eku is not None and _SERVER_AUTH not in eku and not (eku & _SGC):
        return "extendedKeyUsage lacks serverAuth"
    if ca:
        return None
    ku = info.key_usage
    if ku is not None and not (ku.digital_signature or ku.key_encipherment or ku.key_agreement):
        return "keyUsage allows no TLS server use"
    return None
