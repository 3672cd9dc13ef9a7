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
SCHEMA_VERSION = "4"
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
    ],
    metadata={VERSION_KEY: SCHEMA_VERSION.encode()},
)
