"""The one Arrow schema of a scan dataset: a row per domain, MX hosts, their
TLSA RRsets and per-address handshakes nested inside it.

Every enum column holds the string value of the enum in scanner.status (or of
MxKind / TlsaState in scanner.resolve.policy), as truth.parquet of the testbed
does, so `verdict = 'dane_valid'` reads the same in DuckDB, pandas and polars.
Names are stored without the trailing dot. The schema version is in the Parquet
key-value metadata under ``danescan.schema_version``; readers check it.
"""

from __future__ import annotations

import pyarrow as pa

# 3: every verdict explicit (not_tested, undetermined, internal_error where
# 2 wrote null; an address DNS decided carries its host's verdict).
# 4: per TLSA record, ``depth``: the lowest chain depth at which it matches a
# certificate some address of its host presented (scanner.match.depths).
# 5: beside DANE (issue 19): MTA-STS (record, fetch, policy, each MX host
# judged under it), TLS-RPT, REQUIRETLS, STARTTLS downgrade signs, the
# effective policy of a sender, and the verdicts --days-ahead days later.
SCHEMA_VERSION = "5"
VERSION_KEY = b"danescan.schema_version"

TLSA_RECORD = pa.struct(
    [
        ("usage", pa.uint8()),
        ("selector", pa.uint8()),
        ("mtype", pa.uint8()),
        ("data", pa.binary()),
        # Lowest depth at which the record matches a certificate of the chains its
        # host's addresses presented, any usage; -1 none; null when no chain was
        # presented (no TLS, not tested).
        ("depth", pa.int8()),
    ]
)

ADDRESS = pa.struct(
    [
        ("address", pa.string()),
        ("family", pa.uint8()),  # 4 or 6
        ("smtp_status", pa.string()),  # SmtpStatus
        ("error", pa.string()),
        ("verdict", pa.string()),  # DaneVerdict of this address
        ("reason", pa.string()),
        ("banner", pa.string()),
        ("starttls_offered", pa.bool_()),
        ("tls_version", pa.string()),
        ("cipher", pa.string()),
        ("chain", pa.list_(pa.binary())),  # DER, leaf first, as the server sent it
        ("connect_ms", pa.float32()),
        ("tls_ms", pa.float32()),
        ("total_ms", pa.float32()),
        ("attempts", pa.uint8()),
        # REQUIRETLS (RFC 8689) in the EHLO reply over TLS; null without one.
        ("requiretls", pa.bool_()),
    ]
)

MX_HOST = pa.struct(
    [
        ("host", pa.string()),
        ("preference", pa.int32()),
        ("verdict", pa.string()),  # DaneVerdict
        ("reason", pa.string()),
        ("address_dnssec", pa.string()),  # DnssecStatus of the A/AAAA answers
        ("cname_target", pa.string()),
        ("address_ttl", pa.int32()),
        ("address_error", pa.string()),
        ("tlsa_base", pa.string()),  # TLSA base domain: also the SNI name
        ("tlsa_state", pa.string()),  # TlsaState
        ("tlsa_ttl", pa.int32()),
        ("tlsa_error", pa.string()),
        ("tlsa", pa.list_(TLSA_RECORD)),
        ("matched", pa.string()),  # the record that matched, "U S M HEX"
        ("match_depth", pa.int8()),  # chain depth of the matching certificate, -1 none
        ("addresses", pa.list_(ADDRESS)),
        # Under the domain's MTA-STS policy (StsHostStatus, scanner.mailpolicy);
        # null when no policy applies.
        ("mta_sts", pa.string()),
        ("mta_sts_error", pa.string()),
        ("requiretls", pa.bool_()),  # some address offered it over TLS; null: no EHLO over TLS
        ("downgrade", pa.list_(pa.string())),  # DowngradeSign values
        ("verdict_ahead", pa.string()),  # DaneVerdict --days-ahead days later; null: not asked
        # DaneVerdict as a sender that also uses DANE under an insecure MX
        # RRset sees it (RFC 7672 s2.2.1; Postfix's default): ``verdict`` when
        # the MX RRset is secure.
        ("verdict_relaxed", pa.string()),
    ]
)

SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("input_line", pa.int64()),
        ("verdict", pa.string()),  # DomainVerdict
        ("error", pa.string()),
        ("mx_kind", pa.string()),  # MxKind
        ("mx_dnssec", pa.string()),  # DnssecStatus
        ("mx_ttl", pa.int32()),
        ("mx_error", pa.string()),
        ("mx_hosts", pa.list_(MX_HOST)),
        ("scanned_at", pa.timestamp("ms", tz="UTC")),
        ("duration_ms", pa.float32()),
        # Lookups of the domain the scan counted (scanner.assemble), and
        # whether the row rests on an outcome that may differ if tried
        # again (a timeout, a SERVFAIL that is no validation failure, a 4xx,
        # a TLS reset) after the last of them: ``--retry-transient`` redoes those.
        ("attempts", pa.uint8()),
        ("transient", pa.bool_()),
        # DomainVerdict of the relaxed reading (MX_HOST's verdict_relaxed).
        ("verdict_relaxed", pa.string()),
        # MTA-STS (RFC 8461): the _mta-sts record (TxtRecordStatus; null: not
        # looked up), the policy fetch (FetchStatus) and the policy parsed.
        ("mta_sts_record", pa.string()),
        ("mta_sts_id", pa.string()),
        ("mta_sts_record_error", pa.string()),
        ("mta_sts_fetch", pa.string()),
        ("mta_sts_fetch_error", pa.string()),
        ("mta_sts_http_status", pa.int16()),
        ("mta_sts_mode", pa.string()),  # StsMode of a policy parsed whole
        ("mta_sts_max_age", pa.int64()),
        ("mta_sts_mx", pa.list_(pa.string())),
        ("mta_sts_policy_error", pa.string()),
        # TLS-RPT (RFC 8460): the _smtp._tls record.
        ("tlsrpt_record", pa.string()),
        ("tlsrpt_rua", pa.list_(pa.string())),
        ("tlsrpt_error", pa.string()),
        # What a sender implementing DANE and MTA-STS applies (scanner.effective).
        ("effective_policy", pa.string()),
        ("effective_outcome", pa.string()),
        ("effective_reason", pa.string()),
        # --days-ahead N: the verdicts N days later, same records and chains.
        ("days_ahead", pa.int16()),
        ("verdict_ahead", pa.string()),
        ("effective_outcome_ahead", pa.string()),
    ],
    metadata={VERSION_KEY: SCHEMA_VERSION.encode()},
)
