"""TLSA semantics: does a certificate chain authenticate an MX host? (pure)

RFC 6698 defines the records, RFC 7671 their operational rules (digest agility
in section 9), RFC 7672 what they mean for SMTP. The reference implementation
is OpenSSL's DANE verifier (``SSL_dane_enable``), used by Postfix; this module
follows its algorithm step by step so that both agree on every verdict and on
the depth of the matching certificate:

1. Records are validated as ``SSL_dane_tlsa_add`` does: an unknown usage,
   selector or matching type, a digest of the wrong length, or Full(0) data
   that does not parse make that record unusable (never the scan fail). For
   SMTP, usages PKIX-TA(0) and PKIX-EE(1) are unusable too (RFC 7672 section
   3.1.3). If nothing usable is left the verdict is ``unusable``.
2. Digest agility (RFC 7671 section 9): per usage and selector only records of
   the most preferred matching type present are used; Full(0) always is.
   Preference is SHA2-512(2) over SHA2-256(1) by default.
3. DANE-EE(3) records are tried against the leaf first. A match passes, with no
   name and no expiry check (RFC 7672 section 3.1.1); ``ee_name_checks``
   restores OpenSSL's default of checking names here.
4. Otherwise, with DANE-TA(2) records, the chain is built upward from the leaf
   as OpenSSL builds it: issuers are looked up by name among the certificates
   from DNS (``2 0 0`` records, searched first) and those the server sent; each
   certificate added at depth >= 1 is matched against the TA records, and the
   first match becomes the trust anchor. If the chain ends without a match, a
   bare key from a ``2 1 0`` record that verifies the signature of the topmost
   certificate is the anchor.
5. With an anchor: the path from the leaf to it is checked in OpenSSL's order:
   basic constraints, key usage and purpose of every certificate on it
   (``fail_chain``), then the leaf's names against the reference identifiers
   (``fail_ta_name``, RFC 7672 section 3.2.3: SAN dNSName, a wildcard only as
   the whole leftmost label, the subject CN only when no dNSName exists), then
   from the anchor down each signature (cryptography's
   ``verify_directly_issued_by``: ``fail_chain``) and each validity period at
   ``now`` (``fail_ta_expired``). Like OpenSSL, the validity of a trust-anchor
   certificate is checked when it is self-issued or signed by a bare key, and
   not when it is an intermediate.

Precedence: a DANE-EE match wins outright. Otherwise the candidate is the
lowest trust anchor on the path OpenSSL builds, and its verdict is the first
check that fails in the order above. Every higher anchor on the same path would
need the same leaf, names and lower signatures, so it could not pass where the
lowest one fails; like OpenSSL, no other path is tried.

:func:`openssl_verify` is the same algorithm in "conformance mode": PKIX usages
are usable and are evaluated against a given CA bundle, and the result carries
OpenSSL's X509 verify code, so the test vectors of OpenSSL can be compared case
by case. :func:`match_chain` gives the SMTP verdict and, when a CA bundle is
given, the PKIX evaluation of the RRset's usage 0/1 records for statistics.

Time is a parameter; nothing here reads the clock. Certificates are raw DER;
everything derived from them (digests, parsed views, signature checks) comes
from a :class:`CertSource`, which ``scanner.match.batch.CertPool`` implements
with deduplication across a batch.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scanner.status import DaneVerdict

__all__ = [
    "DIGEST_SIZES",
    "CertInfo",
    "CertSource",
    "MatchResult",
    "TlsaRecord",
    "TlsaSyntaxError",
    "VerifyCode",
    "cert_info",
    "host_matches",
    "match_chain",
    "openssl_verify",
    "parse_tlsa",
    "record_problem",
    "unusable_records",
    "verdict_for_code",
    "verify_issued",
    "verify_with_spki",
]

USAGE_NAMES = {0: "PKIX-TA(0)", 1: "PKIX-EE(1)", 2: "DANE-TA(2)", 3: "DANE-EE(3)"}
SELECTOR_NAMES = {0: "Cert(0)", 1: "SPKI(1)"}
MTYPE_NAMES = {0: "Full(0)", 1: "SHA2-256(1)", 2: "SHA2-512(2)"}
DIGEST_SIZES = {1: 32, 2: 64}
DEFAULT_MTYPE_PREFERENCE = (2, 1)  # most preferred first; Full(0) is outside agility

_DANE_USAGES = frozenset({2, 3})
_ALL_USAGES = frozenset({0, 1, 2, 3})
_MAX_CHAIN = 100  # OpenSSL's default verify depth


class VerifyCode(IntEnum):
    """The OpenSSL X509 verify codes this matcher can produce (x509_vfy.h)."""

    OK = 0
    UNSPECIFIED = 1
    UNABLE_TO_GET_ISSUER_CERT = 2
    CERT_SIGNATURE_FAILURE = 7
    CERT_NOT_YET_VALID = 9
    CERT_HAS_EXPIRED = 10
    DEPTH_ZERO_SELF_SIGNED_CERT = 18
    SELF_SIGNED_CERT_IN_CHAIN = 19
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
    UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
    CERT_CHAIN_TOO_LONG = 22
    INVALID_CA = 24
    PATH_LENGTH_EXCEEDED = 25
    INVALID_PURPOSE = 26
    KEYUSAGE_NO_CERTSIGN = 32
    HOSTNAME_MISMATCH = 62
    DANE_NO_MATCH = 65


def verdict_for_code(code: int) -> DaneVerdict:
    """The DaneVerdict that an OpenSSL verify code stands for."""
    if code == VerifyCode.OK:
        return DaneVerdict.PASS
    if code == VerifyCode.DANE_NO_MATCH:
        return DaneVerdict.FAIL_NO_MATCH
    if code == VerifyCode.HOSTNAME_MISMATCH:
        return DaneVerdict.FAIL_TA_NAME
    if code in (VerifyCode.CERT_NOT_YET_VALID, VerifyCode.CERT_HAS_EXPIRED):
        return DaneVerdict.FAIL_TA_EXPIRED
    # signatures, CA flags, key usage, purpose, path length; with PKIX also "no trust path"
    return DaneVerdict.FAIL_CHAIN


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """One TLSA record (RFC 6698 section 2.1): usage, selector, matching type, data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def to_text(self) -> str:
        """Presentation form, "U S M HEX" with upper-case hex as dig prints it."""
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex().upper()}"

    def label(self) -> str:
        """A short human description, e.g. "DANE-EE(3) SPKI(1) SHA2-256(1) 3111..."."""
        usage = USAGE_NAMES.get(self.usage, f"usage {self.usage}")
        selector = SELECTOR_NAMES.get(self.selector, f"selector {self.selector}")
        mtype = MTYPE_NAMES.get(self.mtype, f"mtype {self.mtype}")
        return f"{usage} {selector} {mtype} {self.data[:4].hex().upper()}..."


@dataclass(frozen=True, slots=True)
class TlsaSyntaxError:
    """Why a presentation-format TLSA record could not be read."""

    text: str
    message: str

    def __str__(self) -> str:
        return f"{self.message}: {self.text!r}"


_HEX = frozenset(string.hexdigits)


def parse_tlsa(text: str) -> TlsaRecord | TlsaSyntaxError:
    """Read "U S M HEX" (the hex may contain whitespace, as in zone files).

    Only syntax is checked here: any 0-255 value parses, because a record with
    an unknown usage is a valid record that is merely unusable
    (:func:`record_problem` says why).
    """
    fields = text.split()
    if len(fields) < 4:
        return TlsaSyntaxError(text, "expected 'usage selector mtype hex-data'")
    numbers = []
    for name, field in zip(("usage", "selector", "matching type"), fields[:3], strict=True):
        if not field.isdigit() or not field.isascii() or int(field) > 255:
            return TlsaSyntaxError(text, f"{name} must be an integer 0-255, got {field!r}")
        numbers.append(int(field))
    hexdata = "".join(fields[3:])
    if not set(hexdata) <= _HEX:
        return TlsaSyntaxError(text, "data is not hexadecimal")
    if len(hexdata) % 2:
        return TlsaSyntaxError(text, "data has an odd number of hex digits")
    return TlsaRecord(numbers[0], numbers[1], numbers[2], bytes.fromhex(hexdata))


def record_problem(record: TlsaRecord) -> str | None:
    """Why a record is unusable for any client (as SSL_dane_tlsa_add rejects it), or None.

    Full(0) data that does not parse as a certificate or key is also unusable;
    the matcher checks that when it plans an RRset.
    """
    if record.usage not in _ALL_USAGES:
        return f"unknown certificate usage {record.usage}"
    if record.selector not in (0, 1):
        return f"unknown selector {record.selector}"
    if record.mtype not in (0, 1, 2):
        return f"unknown matching type {record.mtype}"
    size = DIGEST_SIZES.get(record.mtype)
    if size is not None and len(record.data) != size:
        return f"{MTYPE_NAMES[record.mtype]} data must be {size} bytes, got {len(record.data)}"
    if not record.data:
        return "empty certificate association data"
    return None


# --------------------------------------------------------------------------- certificates


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
def _spki_parses(spki: bytes) -> bool:
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


# --------------------------------------------------------------------------- names

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
        ref = name.lower().rstrip(".")
        if ref and any(_name_matches(p, ref) for p in patterns):
            return name
    return None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The DANE outcome for one chain and one TLSA RRset.

    ``depth`` is the chain depth of the certificate that matched (0 = leaf), or
    -1 when nothing matched; a bare ``2 1 0`` key reports the depth of the
    certificate it signed, as OpenSSL does. ``code`` is the OpenSSL X509 verify
    code that OpenSSL would report for the same inputs (None when no record is
    usable). ``pkix`` is the optional PKIX evaluation of usages 0/1.
    """

    verdict: DaneVerdict
    record: TlsaRecord | None
    depth: int
    reason: str
    code: int | None
    pkix: MatchResult | None = None


@dataclass(frozen=True, slots=True, eq=False)
class _Plan:
    """An RRset prepared once: usable records sorted and agility-filtered.

    ``ee_pass`` and ``no_match`` are the results that depend on nothing but the
    RRset and one digest of the leaf, built once so the common case (a DANE-EE
    RRset) costs a digest lookup per record.
    """

    ee: tuple[TlsaRecord, ...]  # usages 3 then 1, OpenSSL's order
    ta: tuple[TlsaRecord, ...]  # usages 2 then 0
    dns_certs: tuple[bytes, ...]  # Full(0) certificates of usages 2/0, in RRset order
    bare_keys: tuple[TlsaRecord, ...]  # 2 1 0
    has_pkix: bool
    unusable: tuple[tuple[TlsaRecord, str], ...]
    ee_pass: tuple[tuple[int, int, bytes, MatchResult], ...]  # usage 3: selector, mtype, data
    no_match: MatchResult | None  # when only DANE-EE records are usable

    @property
    def usable(self) -> bool:
        return bool(self.ee or self.ta)


@lru_cache(maxsize=8192)
def _plan(
    records: tuple[TlsaRecord, ...], usages: frozenset[int], preference: tuple[int, ...]
) -> _Plan:
    ordinal = {mtype: len(preference) - i for i, mtype in enumerate(preference)}
    ordinal[0] = 0
    usable: list[TlsaRecord] = []
    unusable: list[tuple[TlsaRecord, str]] = []
    for record in records:
        problem = record_problem(record)
        if problem is None and record.mtype not in ordinal:
            problem = f"matching type {record.mtype} is not enabled"
        if problem is None and record.usage not in usages:
            problem = f"{USAGE_NAMES[record.usage]} is unusable for SMTP (RFC 7672 section 3.1.3)"
        if problem is None and record.mtype == 0:
            if record.selector == 0 and cert_info(record.data) is None:
                problem = "Full(0) data is not a certificate"
            elif record.selector == 1 and not _spki_parses(record.data):
                problem = "Full(0) data is not a public key"
        if problem is None:
            usable.append(record)
        else:
            unusable.append((record, problem))
    # OpenSSL's order: usage, selector, matching-type preference, all descending.
    usable.sort(key=lambda r: (-r.usage, -r.selector, -ordinal[r.mtype]))
    best: dict[tuple[int, int], int] = {}
    for r in usable:
        best.setdefault((r.usage, r.selector), ordinal[r.mtype])
    kept = [r for r in usable if r.mtype == 0 or ordinal[r.mtype] == best[(r.usage, r.selector)]]
    dns_certs = tuple(
        dict.fromkeys(
            r.data
            for r in records
            if r in kept and r.usage in (0, 2) and r.selector == 0 and r.mtype == 0
        )
    )
    ee = tuple(r for r in kept if r.usage in (3, 1))
    ta = tuple(r for r in kept if r.usage in (2, 0))
    return _Plan(
        ee=ee,
        ta=ta,
        dns_certs=dns_certs,
        bare_keys=tuple(r for r in kept if r.usage == 2 and r.selector == 1 and r.mtype == 0),
        has_pkix=any(r.usage in (0, 1) for r in kept),
        unusable=tuple(unusable),
        ee_pass=tuple((r.selector, r.mtype, r.data, _ee_pass(r)) for r in ee if r.usage == 3),
        no_match=_NO_EE_MATCH if ee and not ta and all(r.usage == 3 for r in ee) else None,
    )


def _ee_pass(record: TlsaRecord) -> MatchResult:
    return MatchResult(
        DaneVerdict.PASS, record, 0, f"{record.label()} matched the leaf", int(VerifyCode.OK)
    )


_NO_EE_MATCH = MatchResult(
    DaneVerdict.FAIL_NO_MATCH,
    None,
    -1,
    "no record matched the leaf certificate",
    int(VerifyCode.DANE_NO_MATCH),
)


def unusable_records(
    records: Iterable[TlsaRecord],
    *,
    smtp: bool = True,
    mtype_preference: tuple[int, ...] = DEFAULT_MTYPE_PREFERENCE,
) -> tuple[tuple[TlsaRecord, str], ...]:
    """The records the matcher will not use, each with the reason (RRset order)."""
    usages = _DANE_USAGES if smtp else _ALL_USAGES
    return _plan(tuple(records), usages, mtype_preference).unusable


def _unusable_result(plan: _Plan) -> MatchResult:
    if not plan.unusable:
        reason = "no TLSA records"
    else:
        reason = "no usable TLSA record: " + "; ".join(
            f"{record.to_text()[:20]}...: {problem}" for record, problem in plan.unusable
        )
    return MatchResult(DaneVerdict.UNUSABLE, None, -1, reason, None)


# --------------------------------------------------------------------------- the algorithm


def _akid_ok(issuer: CertInfo, subject: CertInfo) -> bool:
    """X509_check_akid: the subject's AKID, where present, must name the issuer's key."""
    if subject.aki_keyid is not None and issuer.ski is not None and subject.aki_keyid != issuer.ski:
        return False
    return subject.aki_serial is None or subject.aki_serial == issuer.serial


def _likely_issued(issuer: CertInfo, subject: CertInfo) -> bool:
    return issuer.subject == subject.issuer and _akid_ok(issuer, subject)


def _time_ok(info: CertInfo, now: datetime) -> bool:
    # X509_cmp_time: valid from notBefore inclusive, expired at notAfter.
    return info.not_before <= now < info.not_after


class _Run:
    """State of one evaluation (OpenSSL's X509_STORE_CTX and SSL_DANE fields)."""

    def __init__(
        self,
        plan: _Plan,
        names: Sequence[str],
        now: datetime,
        source: CertSource,
        store: Sequence[CertInfo],
        ee_name_checks: bool,
    ) -> None:
        self.plan = plan
        self.names = names
        self.now = now
        self.source = source
        self.store = store
        self.ee_name_checks = ee_name_checks
        self.chain: list[CertInfo] = []
        self.num_untrusted = 0
        self.mdepth = -1  # depth of the matched certificate (dane->mdpth)
        self.mrecord: TlsaRecord | None = None
        self.pdepth = -1  # depth of the first trust-store certificate (dane->pdpth)
        self.bare_key = False

    # -- record matching (dane_match_cert)

    def match_cert(self, der: bytes, depth: int, from_store: bool) -> bool:
        """Try the records that apply at ``depth``; True if a DANE record matched.

        A PKIX match only records the depth (the chain must still reach the
        trust store). Certificates from the trust store match PKIX-TA only.
        """
        records = self.plan.ee if depth == 0 else self.plan.ta
        pkix_allowed = self.mdepth < 0
        for record in records:
            dane = record.usage >= 2
            if (dane and from_store) or (not dane and not pkix_allowed):
                continue
            if self.source.digest(der, record.selector, record.mtype) == record.data:
                if dane or self.mdepth < 0:
                    self.mdepth, self.mrecord = depth, record
                return dane
        return False

    # -- chain building (build_chain, check_trust, check_dane_issuer, check_dane_pkeys)

    def check_dane_issuer(self, depth: int) -> bool:
        if not self.plan.ta or depth == 0:
            return False
        return self.match_cert(self.chain[depth].der, depth, depth >= self.num_untrusted)

    def check_trust(self, first_trusted: int) -> bool:
        if (
            self.plan.ta
            and 0 < first_trusted < len(self.chain)
            and self.check_dane_issuer(first_trusted)
        ):
            return True
        if not any(c.self_signed for c in self.chain[first_trusted:]):
            return False
        if self.pdepth < 0:
            self.pdepth = first_trusted
        # With DANE, PKIX trust alone is not enough: a PKIX record must have matched too.
        return self.mdepth >= 0

    def best_issuer(
        self, candidates: Sequence[CertInfo], cert: CertInfo, no_dup: bool
    ) -> CertInfo | None:
        best = None
        for cand in candidates:
            if (
                no_dup
                and not (cert.self_issued and len(self.chain) == 1)
                and any(c.der == cand.der for c in self.chain)
            ):
                continue
            if _likely_issued(cand, cert):
                if _time_ok(cand, self.now):
                    return cand
                if best is None or cand.not_after > best.not_after:
                    best = cand
        return best

    def build_chain(self, leaf: CertInfo, peer: Sequence[CertInfo]) -> bool:
        self.chain = [leaf]
        self.num_untrusted = 1
        untrusted = [info for der in self.plan.dns_certs if (info := self.source.info(der))]
        untrusted.extend(peer)
        may_trusted = self.plan.has_pkix
        search_trusted, search_untrusted = may_trusted, True  # OpenSSL's default: trusted first
        trusted = False
        while (search_trusted or search_untrusted) and len(self.chain) <= _MAX_CHAIN:
            if search_trusted:
                curr = self.chain[-1]
                issuer = self.best_issuer(self.store, curr, no_dup=False)
                if issuer is not None:
                    if not curr.self_signed:
                        self.chain.append(issuer)
                        top_self_signed = issuer.self_signed
                    elif curr.der == issuer.der:
                        self.chain[-1] = issuer  # the peer's copy of a trusted root
                        self.num_untrusted -= 1
                        top_self_signed = True
                    else:
                        issuer = None  # a self-signed mimic of a trusted name
                if issuer is not None:
                    search_untrusted = False
                    trusted = self.check_trust(len(self.chain) - 1)
                    if trusted:
                        break
                    if not top_self_signed:
                        continue
                if not search_untrusted:
                    break
            curr = self.chain[-1]
            issuer = None if curr.self_signed else self.best_issuer(untrusted, curr, no_dup=True)
            if issuer is None:
                search_untrusted = False
                search_trusted = may_trusted
                continue
            untrusted.remove(issuer)
            self.chain.append(issuer)
            self.num_untrusted += 1
            if self.check_dane_issuer(self.num_untrusted - 1):
                return True
        if not trusted and self.plan.bare_keys:
            top = self.chain[self.num_untrusted - 1]
            for record in self.plan.bare_keys:
                if self.source.signed_by_key(top, record.data):
                    del self.chain[self.num_untrusted :]
                    self.mdepth, self.mrecord, self.bare_key = self.num_untrusted - 1, record, True
                    return True
        return trusted

    def untrusted_code(self) -> VerifyCode:
        if len(self.chain) > _MAX_CHAIN:
            return VerifyCode.CERT_CHAIN_TOO_LONG
        if not self.plan.has_pkix or self.pdepth >= 0:
            return VerifyCode.DANE_NO_MATCH
        top = self.chain[-1]
        if top.self_signed:
            if len(self.chain) == 1:
                return VerifyCode.DEPTH_ZERO_SELF_SIGNED_CERT
            return VerifyCode.SELF_SIGNED_CERT_IN_CHAIN
        if self.num_untrusted < len(self.chain):
            return VerifyCode.UNABLE_TO_GET_ISSUER_CERT
        return VerifyCode.UNABLE_TO_GET_ISSUER_CERT_LOCALLY

    # -- checks on the path (check_extensions, check_id, internal_verify)

    def check_extensions(self) -> tuple[VerifyCode, int, str] | None:
        count = len(self.chain)
        plen = 0
        for depth, info in enumerate(self.chain):
            if info.extension_error is not None:
                return (
                    VerifyCode.INVALID_CA,
                    depth,
                    f"unreadable extensions ({info.extension_error})",
                )
            if depth > 0:
                ca_level = _check_ca(info)
                if ca_level == 0 or (depth + 1 < count and ca_level != 1):
                    return VerifyCode.INVALID_CA, depth, "issuer is not a CA (basicConstraints)"
            purpose = _purpose_problem(info, depth > 0)
            if purpose is not None:
                return VerifyCode.INVALID_PURPOSE, depth, purpose
            if depth > 1 and info.path_length is not None and plen > info.path_length:
                return VerifyCode.PATH_LENGTH_EXCEEDED, depth, "pathLenConstraint exceeded"
            if depth > 0 and not info.self_issued:
                plen += 1
        return None

    def internal_verify(self) -> tuple[VerifyCode, int, str] | None:
        n = len(self.chain) - 1
        issuer: CertInfo | None = self.chain[n]
        subject = self.chain[n]
        if self.bare_key:
            issuer = None  # the top certificate's signature was checked against the key
        elif not subject.self_issued:
            if n == 0:
                return VerifyCode.UNABLE_TO_VERIFY_LEAF_SIGNATURE, 0, "no issuer for the leaf"
            n -= 1
            subject = self.chain[n]
        while True:
            if issuer is not None and subject is not issuer:
                if issuer.key_usage is not None and not issuer.key_usage.key_cert_sign:
                    return (
                        VerifyCode.KEYUSAGE_NO_CERTSIGN,
                        n + 1,
                        "issuer key usage lacks keyCertSign",
                    )
                if not self.source.issued_by(subject, issuer):
                    return VerifyCode.CERT_SIGNATURE_FAILURE, n, "signature does not verify"
            if subject.not_before > self.now:
                return (
                    VerifyCode.CERT_NOT_YET_VALID,
                    n,
                    f"not valid before {subject.not_before:%Y-%m-%d}",
                )
            if subject.not_after <= self.now:
                return VerifyCode.CERT_HAS_EXPIRED, n, f"expired {subject.not_after:%Y-%m-%d}"
            if n == 0:
                return None
            n -= 1
            issuer, subject = subject, self.chain[n]

    def check_names(self, leaf: CertInfo) -> tuple[VerifyCode, int, str] | None:
        if not self.names:
            return VerifyCode.HOSTNAME_MISMATCH, 0, "no reference identifier to check"
        if host_matches(leaf, self.names) is None:
            shown = ", ".join(leaf.dns_names or leaf.common_names) or "none"
            wanted = ", ".join(self.names)
            return VerifyCode.HOSTNAME_MISMATCH, 0, f"leaf names ({shown}) match none of {wanted}"
        return None

    # -- the whole evaluation (dane_verify, verify_chain)

    def run(self, chain: Sequence[bytes]) -> MatchResult:
        leaf_der = chain[0]
        if self.match_cert(leaf_der, 0, from_store=False):
            assert self.mrecord is not None
            if self.ee_name_checks:
                leaf = self.source.info(leaf_der)
                failure = (
                    (VerifyCode.UNSPECIFIED, 0, "leaf certificate is unreadable")
                    if leaf is None
                    else self.check_names(leaf)
                )
                if failure is not None:
                    return self.failed(failure, f"{self.mrecord.label()} matched the leaf")
            return _ee_pass(self.mrecord)
        if not self.plan.ta and self.mdepth < 0:
            return _NO_EE_MATCH
        leaf = self.source.info(leaf_der)
        if leaf is None:
            return self.result(
                VerifyCode.UNSPECIFIED, "leaf certificate is unreadable; cannot build the chain"
            )
        peer = [info for der in chain if (info := self.source.info(der)) is not None]
        if not self.build_chain(leaf, peer):
            code = self.untrusted_code()
            if code == VerifyCode.DANE_NO_MATCH:
                return self.result(
                    code, f"no record matched any of {len(self.chain)} certificate(s) on the path"
                )
            return self.result(code, f"no path to a trusted CA ({code.name.lower()})")
        anchor = "a bare key" if self.bare_key else f"depth {self.mdepth}"
        assert self.mrecord is not None
        what = f"{self.mrecord.label()} matched {anchor}"
        for check in (self.check_extensions, lambda: self.check_names(leaf), self.internal_verify):
            failure = check()
            if failure is not None:
                return self.failed(failure, what)
        matched = host_matches(leaf, self.names)
        return self.result(
            VerifyCode.OK, f"{what}; chain of {len(self.chain)} verified; name {matched} matched"
        )

    def failed(self, failure: tuple[VerifyCode, int, str], what: str) -> MatchResult:
        code, depth, why = failure
        return self.result(code, f"{what}, but {why} (certificate at depth {depth})")

    def result(self, code: VerifyCode, reason: str) -> MatchResult:
        return MatchResult(verdict_for_code(code), self.mrecord, self.mdepth, reason, int(code))


def _check_ca(info: CertInfo) -> int:
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


def _purpose_problem(info: CertInfo, ca: bool) -> str | None:
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


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _evaluate(
    chain: Sequence[bytes],
    plan: _Plan,
    names: Sequence[str],
    now: datetime,
    source: CertSource,
    store: Sequence[bytes],
    ee_name_checks: bool,
) -> MatchResult:
    if not plan.usable:
        return _unusable_result(plan)
    if not chain:
        return MatchResult(
            DaneVerdict.FAIL_NO_MATCH,
            None,
            -1,
            "no certificate to match",
            int(VerifyCode.DANE_NO_MATCH),
        )
    if not ee_name_checks:  # the common case first: DANE-EE decides without a parse
        leaf = chain[0]
        for selector, mtype, data, passed in plan.ee_pass:
            if source.digest(leaf, selector, mtype) == data:
                return passed
        if plan.no_match is not None:
            return plan.no_match
    store_infos = (
        [info for der in store if (info := source.info(der)) is not None] if plan.has_pkix else []
    )
    return _Run(plan, names, _utc(now), source, store_infos, ee_name_checks).run(chain)


def match_chain(
    chain: Sequence[bytes],
    records: Iterable[TlsaRecord],
    names: Sequence[str],
    now: datetime,
    source: CertSource,
    *,
    ee_name_checks: bool = False,
    ca_store: Sequence[bytes] | None = None,
    mtype_preference: tuple[int, ...] = DEFAULT_MTYPE_PREFERENCE,
) -> MatchResult:
    """The RFC 7672 verdict for one MX host.

    ``chain`` is the DER certificates as the server sent them, leaf first;
    ``names`` are the reference identifiers (TLSA base domain, MX host name,
    and for an implicit MX the domain). Usages 0/1 are unusable for SMTP; when
    ``ca_store`` (DER certificates) is given and the RRset has such records,
    ``pkix`` carries their PKIX evaluation against it.
    """
    records = tuple(records)
    plan = _plan(records, _DANE_USAGES, mtype_preference)
    result = _evaluate(chain, plan, names, now, source, (), ee_name_checks)
    if ca_store is not None:
        pkix_records = tuple(r for r in records if r.usage in (0, 1))
        if pkix_records:
            pkix = openssl_verify(
                chain,
                pkix_records,
                names,
                now,
                source,
                ca_store=ca_store,
                mtype_preference=mtype_preference,
            )
            result = replace(result, pkix=pkix)
    return result


def openssl_verify(
    chain: Sequence[bytes],
    records: Iterable[TlsaRecord],
    names: Sequence[str],
    now: datetime,
    source: CertSource,
    *,
    ca_store: Sequence[bytes] = (),
    ee_name_checks: bool = True,
    mtype_preference: tuple[int, ...] = DEFAULT_MTYPE_PREFERENCE,
) -> MatchResult:
    """Conformance mode: what OpenSSL's DANE verifier reports, all four usages usable.

    ``code`` is the X509 verify code (0, 20, 62, 65, ...) and ``depth`` the
    match depth that ``SSL_get0_dane_authority`` returns. PKIX usages are
    checked against ``ca_store``; DANE-EE names are checked unless
    ``ee_name_checks`` is off (OpenSSL's ``DANE_FLAG_NO_DANE_EE_NAMECHECKS``).
    """
    plan = _plan(tuple(records), _ALL_USAGES, mtype_preference)
    return _evaluate(chain, plan, names, now, source, ca_store, ee_name_checks)
