"""Every outcome the scanner records, as string-valued enums.

Outcomes are data: a stage maps whatever a remote party did onto one of these
values plus a free-text error string, and never raises. The string values are
what the Parquet dataset stores, so renaming a member is a schema change.

The DANE vocabulary follows RFC 7672 sections 2.1-2.2 (DNSSEC status of MX,
address and TLSA lookups) and section 3 (what a verdict per MX host means).
"""

from __future__ import annotations

from enum import StrEnum


class DnssecStatus(StrEnum):
    """Validation state of an answer as reported by the validating resolver."""

    SECURE = "secure"  # AD set by a trusted validating resolver
    INSECURE = "insecure"  # answer without AD: provably unsigned or not validated
    BOGUS = "bogus"  # validation failed (resolver answers SERVFAIL, EDE 6-12)
    INDETERMINATE = "indeterminate"  # SERVFAIL or timeout: cannot tell


class DnsOutcome(StrEnum):
    """What came back for one DNS query."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"  # TC set over UDP and the TCP retry failed too
    MALFORMED = "malformed"


class SmtpStatus(StrEnum):
    """Outcome of one SMTP STARTTLS session with one address."""

    TLS_OK = "tls_ok"
    NO_STARTTLS = "no_starttls"
    STARTTLS_REFUSED = "starttls_refused"  # 4xx/5xx reply to STARTTLS
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    IO_TIMEOUT = "io_timeout"
    BANNER_ERROR = "banner_error"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"
    BLOCKED = "blocked"  # excluded by the scan's blocklist: no packet sent
    # A special-purpose address (RFC 6890: private, loopback, documentation,
    # ...) the scan does not allow: no packet sent (scanner.handshake.contact).
    RESERVED = "reserved"
    SKIPPED = "skipped"


class DaneVerdict(StrEnum):
    """DANE authentication result for one MX host (RFC 7672 section 3)."""

    PASS = "pass"
    FAIL_NO_MATCH = "fail_no_match"
    FAIL_TA_NAME = "fail_ta_name"
    FAIL_TA_EXPIRED = "fail_ta_expired"
    FAIL_CHAIN = "fail_chain"
    FAIL_NO_TLS = "fail_no_tls"
    # TLSA lookup SERVFAIL or bogus under a secure host: mail would be deferred
    FAIL_DNS = "fail_dns"
    UNUSABLE = "unusable"  # only usages 0/1 or malformed records
    NO_DANE_INSECURE = "no_dane_insecure"
    NO_DANE_ABSENT = "no_dane_absent"  # secure proof that no TLSA exists
    # A secure TLSA RRset awaits a chain that no session brought: the host
    # (or address) was not contacted (--starttls none, the contact policy,
    # an internal error), so DANE was not tested.
    NOT_TESTED = "not_tested"

    @property
    def is_failure(self) -> bool:
        return self.value.startswith("fail_")


class DomainVerdict(StrEnum):
    """Summary per domain over all of its MX hosts."""

    DANE_VALID = "dane_valid"  # every MX host that accepts connections passes
    DANE_PARTIAL = "dane_partial"
    DANE_INVALID = "dane_invalid"
    NO_DANE = "no_dane"
    DNSSEC_BOGUS = "dnssec_bogus"
    # The MX lookup failed without a validation error (SERVFAIL without EDE
    # 6-12, timeout, refused): neither bogus nor anything else can be claimed.
    DNS_ERROR = "dns_error"
    NULL_MX = "null_mx"
    NO_MX_RECORD = "no_mx_record"  # implicit MX (the domain itself) was used
    NXDOMAIN = "nxdomain"
    INPUT_ERROR = "input_error"
    # An MX host with a secure TLSA RRset was not tested (DaneVerdict.NOT_TESTED):
    # none of them was, or only some were, so the verdict rests on one untested.
    NOT_TESTED = "not_tested"
    UNDETERMINED = "undetermined"
    INTERNAL_ERROR = "internal_error"  # a bug stopped the domain: ``error`` says where
