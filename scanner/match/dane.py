"""The DANE algorithm: does a certificate chain authenticate an MX host? (pure)

RFC 6698 defines the records, RFC 7671 their operational rules (digest agility
in section 9), RFC 7672 what they mean for SMTP. The reference implementation
is OpenSSL's DANE verifier (``SSL_dane_enable``), used by Postfix; this module
follows its algorithm step by step so that both agree on every verdict and on
the depth of the matching certificate:

1. The RRset is planned (:mod:`scanner.match.records`): unusable records are
   set aside as ``SSL_dane_tlsa_add`` does (for SMTP also PKIX-TA(0) and
   PKIX-EE(1), RFC 7672 section 3.1.3) and digest agility applies (RFC 7671
   section 9). If nothing usable is left the verdict is ``unusable``.
2. DANE-EE(3) records are tried against the leaf first. A match passes, with no
   name and no expiry check (RFC 7672 section 3.1.1); ``ee_name_checks``
   restores OpenSSL's default of checking names here.
3. Otherwise, with DANE-TA(2) records, the chain is built upward from the leaf
   as OpenSSL builds it: issuers are looked up by name among the certificates
   from DNS (``2 0 0`` records, searched first) and those the server sent; each
   certificate added at depth >= 1 is matched against the TA records, and the
   first match becomes the trust anchor. If the chain ends without a match, a
   bare key from a ``2 1 0`` record that verifies the signature of the topmost
   certificate is the anchor.
4. With an anchor: the path from the leaf to it is checked in OpenSSL's order:
   basic constraints, key usage and purpose of every certificate on it
   (``fail_chain``), then the leaf's names against the reference identifiers
   (``fail_ta_name``, RFC 7672 section 3.2.3: :mod:`scanner.match.identifiers`),
   then from the anchor down each signature (cryptography's
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
from a ``scanner.match.certificates.CertSource``, which
``scanner.match.batch.CertPool`` implements with deduplication across a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from scanner.match.certificates import (
    CertInfo,
    CertSource,
    check_ca,
    likely_issued,
    purpose_problem,
    time_ok,
)
from scanner.match.identifiers import host_matches
from scanner.match.outcome import NO_EE_MATCH, MatchResult, VerifyCode, ee_pass, verdict_for_code
from scanner.match.records import (
    ALL_USAGES,
    DANE_USAGES,
    DEFAULT_MTYPE_PREFERENCE,
    Plan,
    plan_rrset,
    unusable_result,
)
from scanner.status import DaneVerdict
from scanner.tlsa import TlsaRecord

__all__ = ["match_chain", "openssl_verify"]

_MAX_CHAIN = 100  # OpenSSL's default verify depth


@dataclass(slots=True, eq=False)
class _Run:
    """State of one evaluation (OpenSSL's X509_STORE_CTX and SSL_DANE fields)."""

    plan: Plan
    names: Sequence[str]
    now: datetime
    source: CertSource
    store: Sequence[CertInfo]
    ee_name_checks: bool
    chain: list[CertInfo] = field(default_factory=list)
    num_untrusted: int = 0
    mdepth: int = -1  # depth of the matched certificate (dane->mdpth)
    mrecord: TlsaRecord | None = None
    pdepth: int = -1  # depth of the first trust-store certificate (dane->pdpth)
    bare_key: bool = False

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
            if likely_issued(cand, cert):
                if time_ok(cand, self.now):
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
                ca_level = check_ca(info)
                if ca_level == 0 or (depth + 1 < count and ca_level != 1):
                    return VerifyCode.INVALID_CA, depth, "issuer is not a CA (basicConstraints)"
            purpose = purpose_problem(info, depth > 0)
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
            return ee_pass(self.mrecord)
        if not self.plan.ta and self.mdepth < 0:
            return NO_EE_MATCH
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


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _evaluate(
    chain: Sequence[bytes],
    plan: Plan,
    names: Sequence[str],
    now: datetime,
    source: CertSource,
    store: Sequence[bytes],
    ee_name_checks: bool,
) -> MatchResult:
    if not plan.usable:
        return unusable_result(plan)
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
    plan = plan_rrset(records, DANE_USAGES, mtype_preference)
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
    plan = plan_rrset(tuple(records), ALL_USAGES, mtype_preference)
    return _evaluate(chain, plan, names, now, source, ca_store, ee_name_checks)
