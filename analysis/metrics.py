"""The measures of a DANE survey, as pure functions returning tidy DataFrames.

Every function takes a DuckDB relation whose columns follow the dataset schema
(scanner.output.schema.SCHEMA): the whole dataset (analysis.load.full_relation),
one of the projected relations of analysis.load.Scan, or a relation built in
memory from a few hand-written rows. Functions run SQL over that relation and
return small pandas frames: one observation per row, one variable per column,
counts as integers and shares as floats in [0, 1]. Nothing here reads files,
draws, or keeps state between calls.

Which relation each function needs: :func:`funnel`, :func:`funnel_by_tld`,
:func:`domain_verdicts`, :func:`host_verdicts` and :func:`scan_diff` count
every domain, so they need every row (``Scan.domains``); the others only look
at domains where DANE is in play and give the same result on ``Scan.dane``.

Units. The literature's numbers disagree partly because they count different
things, so every function says what it counts:

- a *domain* is a row of the dataset (one input domain);
- a *host* is an MX host name; the same host serves many domains, and it is
  counted once however many domains point to it;
- an *RRset* is the TLSA RRset at one TLSA base domain (``tlsa_base``: the MX
  host name, or its CNAME expansion, RFC 7672 section 2.2.2); hosts that are
  aliases of one name share it;
- an *endpoint* is one (MX host, address) pair that was connected to.

The funnel (RFC 7672 section 2.2 in order): all domains; domains with mail
hosts (an MX RRset with hosts, or an implicit MX, RFC 5321 section 5.1); with
a DNSSEC-secure MX RRset (without it DANE cannot apply, RFC 7672 section
2.2.1); with at least one MX host whose TLSA RRset is secure and non-empty
(``tlsa_state = 'records'``); and DANE-valid (DomainVerdict ``dane_valid``:
every MX host that accepts connections authenticates). Each stage is a subset
of the one before, by construction. Domains without an MX RRset that use their
implicit MX carry the verdict ``no_mx_record`` and so never count as DANE-valid.

Failure taxonomy. Lee et al., "A Longitudinal and Comprehensive Study of the
DANE Ecosystem in Email" (USENIX Security 2020), sort DANE misconfigurations
into six categories. The dataset records finer outcomes; they map as follows
(:data:`FAILURE_STATUSES`):

==============  =================================================================
Lee et al.      danescan status
==============  =================================================================
no TLSA         ``no_tlsa_on_host``: an MX host with a secure proof of no TLSA
                (``no_dane_absent``) in a domain where another MX host has TLSA
no certificate  ``fail_no_tls``: no certificate obtained (no STARTTLS, refused,
                connection or TLS failure)
no DS           ``tlsa_insecure``: TLSA records answered without DNSSEC validation
                (``tlsa_state = 'insecure'`` with records): published in a zone
                whose delegation has no DS, so senders cannot use them
bogus           ``dnssec_bogus`` (domain: the MX RRset failed validation) and
                ``fail_dns`` (host: TLSA lookup bogus or SERVFAIL under a secure
                host, so mail is deferred)
invalid fields  ``unusable``: only PKIX usages (0, 1) or malformed records
no match        ``fail_no_match``, ``fail_ta_name``, ``fail_ta_expired``,
                ``fail_chain``: records present and usable, the chain presented
                does not authenticate with them
==============  =================================================================

"No DS" is seen only where the scanner looked the TLSA RRset up under an
insecure answer, so the category counts what the scan saw, not every such
domain. A failed MX lookup without a validation error (``dns_error``) proves
nothing about DANE and is in no category.

Operators. The operator of an MX host is its registered domain. Without a
public suffix list offline, it is approximated by the last two labels of the
host name: exact for names under ``.com``, ``.de`` or ``.nl``, too short under
multi-label suffixes such as ``.co.uk`` (``mx.example.co.uk`` gives
``co.uk``), which groups unrelated operators there.

Rollover and trust anchors. RFC 7671 section 8 (TLSA publisher requirements)
has the record of the next key published before the key is used; a "3 1 1"
record kept together with a "2 1 1" record for the issuing CA lets either the
key or the CA change without leaving the RRset without a match. Which records match
which certificate is recomputed here from the chains the hosts presented
(scanner.match.batch.CertPool), so stale records are found even on hosts that
pass thanks to another record. A DANE-TA record that pins an intermediate CA
certificate (say a Let's Encrypt intermediate) breaks when the CA moves its
leaf certificates to another intermediate, unless a DANE-EE record or a pinned
root also matches: :func:`ta_exposure` counts those RRsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from cryptography.x509.oid import NameOID

from scanner.match.batch import CertPool
from scanner.match.tlsa import cert_info
from scanner.status import DaneVerdict, DomainVerdict

__all__ = [
    "CHANGES",
    "FAILURE_STATUSES",
    "FUNNEL_STAGES",
    "LEE_CATEGORIES",
    "UNMATCHED_ANCHOR",
    "FailureStatus",
    "Stage",
    "changed_domains",
    "domain_verdicts",
    "failure_categories",
    "failure_taxonomy",
    "funnel",
    "funnel_by_tld",
    "host_verdicts",
    "provider_concentration",
    "rollover_readiness",
    "scan_diff",
    "ta_anchors",
    "ta_exposure",
    "tls_ciphers",
    "tls_versions",
    "tlsa_records",
    "tlsa_triplets",
]


# -- vocabulary -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the adoption funnel."""

    key: str
    label: str


FUNNEL_STAGES: tuple[Stage, ...] = (
    Stage("domains", "domains"),
    Stage("with_mx", "with MX"),
    Stage("secure_mx", "with secure MX"),
    Stage("secure_tlsa", "MX host with secure TLSA"),
    Stage("dane_valid", "DANE-valid"),
)


@dataclass(frozen=True, slots=True)
class FailureStatus:
    """A failure status of the dataset and the Lee et al. category it belongs to."""

    status: str
    category: str  # Lee et al. 2020
    level: Literal["domain", "host"]


FAILURE_STATUSES: tuple[FailureStatus, ...] = (
    FailureStatus("no_tlsa_on_host", "no TLSA", "host"),
    FailureStatus(DaneVerdict.FAIL_NO_TLS.value, "no certificate", "host"),
    FailureStatus("tlsa_insecure", "no DS", "host"),
    FailureStatus(DomainVerdict.DNSSEC_BOGUS.value, "bogus", "domain"),
    FailureStatus(DaneVerdict.FAIL_DNS.value, "bogus", "host"),
    FailureStatus(DaneVerdict.UNUSABLE.value, "invalid fields", "host"),
    FailureStatus(DaneVerdict.FAIL_NO_MATCH.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_TA_NAME.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_TA_EXPIRED.value, "no match", "host"),
    FailureStatus(DaneVerdict.FAIL_CHAIN.value, "no match", "host"),
)
LEE_CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(f.category for f in FAILURE_STATUSES))

# (DANE state in the old scan, in the new scan) -> what happened (see scan_diff).
CHANGES: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("none", "valid"): "adopted",
        ("none", "failing"): "adopted broken",
        ("valid", "failing"): "broke",
        ("valid", "bogus"): "broke",
        ("failing", "valid"): "fixed",
        ("bogus", "valid"): "fixed",
        ("valid", "none"): "dropped",
        ("failing", "none"): "dropped",
    }
)

_FAILING_HOST_VERDICTS = (
    *(v.value for v in DaneVerdict if v.is_failure),
    DaneVerdict.UNUSABLE.value,
)


# -- SQL helpers ------------------------------------------------------------------------


def _query(
    relation: duckdb.DuckDBPyRelation, query: str, name: str = "scan"
) -> duckdb.DuckDBPyRelation:
    """``query`` over ``relation``, which it sees as the table ``name``."""
    result = relation.query(name, query)
    if result is None:  # only for statements that return nothing, never a SELECT
        raise ValueError(f"query returned no relation: {query[:60]}")
    return result


def _sql(scan: duckdb.DuckDBPyRelation, query: str) -> pd.DataFrame:
    """Run ``query`` with the relation visible as the table ``scan``, as a DataFrame."""
    return _query(scan, query).df()


def _in(values: Iterable[str]) -> str:
    """A SQL list literal of known constant strings (never user input)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


# DANE applies only under a secure MX RRset (RFC 7672 section 2.2.1): the per-host
# lambda runs on those few rows only, which saves most of its cost on a large scan.
_SECURE_TLSA = (
    "CASE WHEN mx_dnssec = 'secure' "
    "THEN coalesce(list_bool_or([h.tlsa_state = 'records' for h in mx_hosts]), false) "
    "ELSE false END"
)
_TLD = "lower(split_part(domain, '.', -1))"
_HOSTS = "SELECT domain, verdict AS domain_verdict, unnest(mx_hosts) AS h FROM scan"
_OPERATOR = (
    "CASE WHEN contains(host, '.') THEN regexp_extract(host, '[^.]+\\.[^.]+$') ELSE host END"
)


def _share(part: pd.Series, whole: pd.Series | int | float) -> pd.Series:
    """part / whole as floats, 0 where the whole is 0."""
    whole_series = pd.Series(whole, index=part.index) if not isinstance(whole, pd.Series) else whole
    out = part.astype("float64") / whole_series.astype("float64").where(whole_series != 0)
    return out.fillna(0.0)


# -- funnel -----------------------------------------------------------------------------


def _funnel_counts(scan: duckdb.DuckDBPyRelation, by: str | None) -> pd.DataFrame:
    group = f"{by} AS tld," if by else ""
    query = f"""
        WITH flags AS (
            SELECT {group}
                mx_kind IN ('hosts', 'implicit') AS with_mx,
                mx_dnssec = 'secure' AS secure,
                {_SECURE_TLSA} AS tlsa,
                verdict = 'dane_valid' AS valid
            FROM scan
        )
        SELECT {"tld," if by else ""}
            count(*) AS domains,
            count(*) FILTER (with_mx) AS with_mx,
            count(*) FILTER (with_mx AND secure) AS secure_mx,
            count(*) FILTER (with_mx AND secure AND tlsa) AS secure_tlsa,
            count(*) FILTER (with_mx AND secure AND tlsa AND valid) AS dane_valid
        FROM flags
        {"GROUP BY tld" if by else ""}
    """
    return _sql(scan, query)


def _long_funnel(wide: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Stage columns to rows, with each stage's share of the first and of the previous."""
    keys = [stage.key for stage in FUNNEL_STAGES]
    counts = wide[keys].astype("int64").to_numpy()
    previous = counts[:, [0, *range(len(keys) - 1)]]
    frame = {column: wide[column].repeat(len(keys)).to_numpy() for column in ids}
    long = pd.DataFrame(
        {
            **frame,
            "stage": pd.Categorical(keys * len(wide), categories=keys, ordered=True),
            "domains": counts.ravel(),
        }
    )
    long["share_of_all"] = _share(long["domains"], pd.Series(counts[:, [0] * len(keys)].ravel()))
    long["share_of_previous"] = _share(long["domains"], pd.Series(previous.ravel()))
    return long


def funnel(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """The adoption funnel over every domain (stages: :data:`FUNNEL_STAGES`).

    Columns: ``stage`` (ordered categorical of stage keys), ``label``,
    ``domains``, ``share_of_all`` (of all domains), ``share_of_previous``
    (of the stage before; 1 for the first stage).
    """
    wide = _funnel_counts(scan, None)
    long = _long_funnel(wide, [])
    labels = {s.key: s.label for s in FUNNEL_STAGES}
    long.insert(1, "label", long["stage"].map(labels).astype("str"))
    return long


def funnel_by_tld(scan: duckdb.DuckDBPyRelation, *, top: int | None = None) -> pd.DataFrame:
    """The funnel per top-level domain (the last label of the domain name).

    TLDs are ordered by their number of domains, largest first; ``top`` keeps
    the largest ones. Columns: ``tld``, ``stage``, ``domains``,
    ``share_of_all`` (of the TLD's domains), ``share_of_previous``.
    """
    wide = _funnel_counts(scan, _TLD)
    wide = wide.sort_values(["domains", "tld"], ascending=[False, True], kind="stable")
    if top is not None:
        wide = wide.head(top)
    order = list(wide["tld"])
    long = _long_funnel(wide, ["tld"])
    long["tld"] = pd.Categorical(long["tld"], categories=order, ordered=True)
    return long.sort_values(["tld", "stage"], kind="stable").reset_index(drop=True)


# -- verdicts ---------------------------------------------------------------------------


def _complete(counts: pd.DataFrame, key: str, known: Sequence[str]) -> pd.DataFrame:
    """Every known value (zero when absent), in enum order, then any unknown ones."""
    seen = [v for v in counts[key].astype("str") if v not in known]
    order = [*known, *sorted(seen)]
    full = pd.DataFrame({key: order}).merge(counts, on=key, how="left")
    count_columns = [c for c in full.columns if c != key]
    full[count_columns] = full[count_columns].fillna(0).astype("int64")
    return full


def domain_verdicts(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Domains per DomainVerdict (every value, zero included).

    Columns: ``verdict``, ``domains``, ``share`` (of all domains).
    """
    counts = _sql(
        scan,
        "SELECT coalesce(CAST(verdict AS VARCHAR), 'null') AS verdict, count(*) AS domains "
        "FROM scan GROUP BY 1",
    )
    full = _complete(counts, "verdict", [v.value for v in DomainVerdict])
    full["share"] = _share(full["domains"], int(full["domains"].sum()))
    return full


def host_verdicts(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """MX host outcomes per DaneVerdict (every value, zero included).

    ``pairs`` counts (domain, MX host) pairs, as a sender delivering to every
    domain would meet them; ``hosts`` counts distinct host names with that
    verdict (a host reached from signed and from unsigned domains can have two
    verdicts, so ``hosts`` does not sum to the number of hosts). Columns:
    ``verdict``, ``pairs``, ``hosts``, ``share`` (of all pairs).
    """
    counts = _sql(
        scan,
        f"""
        SELECT coalesce(CAST(h.verdict AS VARCHAR), 'null') AS verdict,
               count(*) AS pairs, count(DISTINCT h.host) AS hosts
        FROM ({_HOSTS}) GROUP BY 1
        """,
    )
    full = _complete(counts, "verdict", [v.value for v in DaneVerdict])
    full["share"] = _share(full["pairs"], int(full["pairs"].sum()))
    return full


# -- TLSA parameters --------------------------------------------------------------------


def _secure_hosts(*columns: str) -> str:
    """The CTE ``secure``: one row per (domain, MX host with secure TLSA records)."""
    extra = "".join(f", {c}" for c in columns)
    return f"""
    secure AS (
        SELECT domain, domain_verdict, h.host AS host,
               coalesce(h.tlsa_base, h.host) AS base{extra}
        FROM ({_HOSTS}) WHERE h.tlsa_state = 'records'
    )
    """


def tlsa_triplets(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Usage, selector and matching type of secure TLSA records, in three units.

    ``unit = 'record'``: each record of each distinct RRset once; ``'rrset'``:
    RRsets holding at least one record with the triplet; ``'domain'``: domains
    with at least one such record on any MX host. Shares are of all records,
    all RRsets and all domains with secure TLSA records; per RRset and per
    domain they do not sum to 1 (an RRset can hold several triplets).
    Columns: ``triplet`` ("3 1 1"), ``usage``, ``selector``, ``mtype``,
    ``unit``, ``count``, ``share``; largest first within each unit.
    """
    query = f"""
        WITH {_secure_hosts("h.tlsa AS tlsa")},
        rrsets AS (SELECT base, any_value(tlsa) AS tlsa FROM secure GROUP BY base),
        records AS (SELECT base, unnest(tlsa) AS r FROM rrsets),
        domain_records AS (SELECT DISTINCT domain, r.usage, r.selector, r.mtype
                           FROM (SELECT domain, unnest(tlsa) AS r FROM secure))
        SELECT 'record' AS unit, r.usage AS usage, r.selector AS selector, r.mtype AS mtype,
               count(*) AS count, (SELECT count(*) FROM records) AS total
        FROM records GROUP BY ALL
        UNION ALL
        SELECT 'rrset', r.usage, r.selector, r.mtype, count(DISTINCT base),
               (SELECT count(*) FROM rrsets)
        FROM records GROUP BY ALL
        UNION ALL
        SELECT 'domain', usage, selector, mtype, count(*),
               (SELECT count(DISTINCT domain) FROM secure)
        FROM domain_records GROUP BY ALL
    """
    raw = _sql(scan, query)
    out = pd.DataFrame(
        {
            "triplet": [
                f"{u} {s} {m}"
                for u, s, m in zip(raw["usage"], raw["selector"], raw["mtype"], strict=True)
            ],
            "usage": raw["usage"].astype("int64"),
            "selector": raw["selector"].astype("int64"),
            "mtype": raw["mtype"].astype("int64"),
            "unit": pd.Categorical(raw["unit"], ["record", "rrset", "domain"], ordered=True),
            "count": raw["count"].astype("int64"),
            "share": _share(raw["count"], raw["total"]),
        }
    )
    return out.sort_values(
        ["unit", "count", "triplet"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)


# -- failures ---------------------------------------------------------------------------


def _failure_rows() -> str:
    host_statuses = _in(
        f.status
        for f in FAILURE_STATUSES
        if f.level == "host" and f.status in _FAILING_HOST_VERDICTS
    )
    return f"""
        WITH hosts AS ({_HOSTS}),
        dane_domains AS (SELECT DISTINCT domain FROM hosts WHERE h.tlsa_state = 'records'),
        statuses AS (
            SELECT domain, h.host AS host, CAST(h.verdict AS VARCHAR) AS status
            FROM hosts WHERE h.verdict IN {host_statuses}
            UNION ALL
            SELECT domain, h.host, 'tlsa_insecure' FROM hosts
            WHERE h.tlsa_state = 'insecure' AND len(h.tlsa) > 0
            UNION ALL
            SELECT domain, h.host, 'no_tlsa_on_host' FROM hosts
            WHERE h.verdict = 'no_dane_absent' AND domain IN (SELECT domain FROM dane_domains)
            UNION ALL
            SELECT domain, NULL, 'dnssec_bogus' FROM scan WHERE verdict = 'dnssec_bogus'
        )
    """


def failure_taxonomy(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Failures per danescan status, with the Lee et al. category of each.

    One row per entry of :data:`FAILURE_STATUSES` (zero included). ``domains``
    counts distinct domains with the status, ``hosts`` distinct MX host names
    (0 for domain-level statuses). A domain with two failing hosts is counted
    under both statuses. Columns: ``category``, ``status``, ``level``,
    ``domains``, ``hosts``.
    """
    counts = _sql(
        scan,
        _failure_rows()
        + "SELECT status, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts "
        "FROM statuses GROUP BY status",
    )
    table = pd.DataFrame(
        {
            "category": [f.category for f in FAILURE_STATUSES],
            "status": [f.status for f in FAILURE_STATUSES],
            "level": [f.level for f in FAILURE_STATUSES],
        }
    )
    table = table.merge(counts, on="status", how="left")
    table[["domains", "hosts"]] = table[["domains", "hosts"]].fillna(0).astype("int64")
    return table


def failure_categories(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Distinct domains per Lee et al. category (every category, zero included).

    A domain with failures of two categories counts in both; ``share`` is of
    the domains with any failure. Columns: ``category``, ``domains``, ``share``.
    """
    mapping = " ".join(f"WHEN '{f.status}' THEN '{f.category}'" for f in FAILURE_STATUSES)
    counts = _sql(
        scan,
        _failure_rows()
        + f"""
        , categorised AS (SELECT domain, CASE status {mapping} END AS category FROM statuses)
        SELECT category, count(DISTINCT domain) AS domains,
               (SELECT count(DISTINCT domain) FROM statuses) AS total
        FROM categorised GROUP BY category
        """,
    )
    total = int(counts["total"].max()) if len(counts) else 0
    table = pd.DataFrame({"category": list(LEE_CATEGORIES)}).merge(
        counts[["category", "domains"]], on="category", how="left"
    )
    table["domains"] = table["domains"].fillna(0).astype("int64")
    table["share"] = _share(table["domains"], total)
    return table


# -- providers --------------------------------------------------------------------------


def provider_concentration(
    scan: duckdb.DuckDBPyRelation,
    *,
    by: Literal["operator", "host"] = "operator",
    top: int | None = None,
) -> pd.DataFrame:
    """Who operates the MX hosts of DANE domains, largest first.

    Counts MX hosts with secure TLSA records and the domains they serve, per
    host name (``by='host'``) or per operator (``by='operator'``, the
    registered domain approximated by the last two labels: see the module
    docstring). ``share`` is of all domains with an MX host with secure TLSA
    records; a domain whose hosts belong to two operators counts for both, so
    ``cumulative_share`` can exceed 1 at the tail. Columns: ``rank``,
    ``provider``, ``hosts``, ``domains``, ``dane_valid`` (of those domains),
    ``share``, ``cumulative_share``.
    """
    key = "host" if by == "host" else _OPERATOR
    query = f"""
        WITH {_secure_hosts()},
        keyed AS (SELECT domain, domain_verdict, host, {key} AS provider FROM secure)
        SELECT provider, count(DISTINCT host) AS hosts, count(DISTINCT domain) AS domains,
               count(DISTINCT domain) FILTER (domain_verdict = 'dane_valid') AS dane_valid,
               (SELECT count(DISTINCT domain) FROM secure) AS total
        FROM keyed GROUP BY provider
        ORDER BY domains DESC, provider
    """
    raw = _sql(scan, query)
    total = int(raw["total"].max()) if len(raw) else 0
    out = pd.DataFrame(
        {
            "rank": pd.RangeIndex(1, len(raw) + 1),
            "provider": raw["provider"].astype("str"),
            "hosts": raw["hosts"].astype("int64"),
            "domains": raw["domains"].astype("int64"),
            "dane_valid": raw["dane_valid"].astype("int64"),
        }
    )
    out["share"] = _share(out["domains"], total)
    out["cumulative_share"] = out["share"].cumsum()
    return out.head(top) if top is not None else out


# -- records against presented certificates ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Anchor:
    name: str
    organization: str
    kind: Literal["root", "intermediate", "leaf"]


def _anchor(der: bytes, depth: int) -> _Anchor:
    """Name and kind of the certificate a record matched at ``depth``."""
    info = cert_info(der)
    if info is None:
        return _Anchor("(unparsable certificate)", "", "leaf" if depth == 0 else "intermediate")
    subject = info.cert.subject
    common = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    name = str(common[0].value) if common else subject.rfc4514_string()
    kind: Literal["root", "intermediate", "leaf"] = (
        "leaf" if depth == 0 else "root" if info.self_issued else "intermediate"
    )
    return _Anchor(name, str(orgs[0].value) if orgs else "", kind)


@dataclass(frozen=True, slots=True)
class Observed:
    """Secure RRsets checked against the chains their hosts presented.

    The costly step behind :func:`tlsa_records`, :func:`rollover_readiness`,
    :func:`ta_exposure` and :func:`ta_anchors` (two queries and a parse of
    every certificate presented): make it once with :func:`observe` and pass
    it to each as ``observed=`` when computing several.
    """

    records: pd.DataFrame  # as returned by tlsa_records
    pairs: pd.DataFrame  # (domain, base): which domains use which RRset

    def domains(self, bases: Iterable[str]) -> int:
        """Distinct domains with an MX host using one of ``bases``."""
        return int(self.pairs.loc[self.pairs["base"].isin(set(bases)), "domain"].nunique())


def observe(scan: duckdb.DuckDBPyRelation) -> Observed:
    """Check every secure TLSA RRset against the chains its hosts presented."""
    # The scanner resolves and connects once per host, so every domain row shows
    # the same RRset and chains for a host: any one row stands for all of them.
    rrsets = _query(
        scan,
        f"""
        WITH {
            _secure_hosts(
                "h.tlsa AS tlsa",
                "h.verdict AS verdict",
                "[a.chain FOR a IN h.addresses IF len(a.chain) > 0] AS chains",
            )
        }
        SELECT base, any_value(tlsa) AS tlsa, any_value(chains) AS chains,
               any_value(CAST(verdict AS VARCHAR)) AS verdict
        FROM secure GROUP BY base ORDER BY base
        """,
    ).to_arrow_table()
    pairs = _sql(scan, f"WITH {_secure_hosts()} SELECT DISTINCT domain, base FROM secure")
    per_base = pairs.groupby("base")["domain"].nunique().to_dict()
    return Observed(_check_records(rrsets.to_pylist(), per_base), pairs)


def _lowest_match(
    record: Mapping[str, Any], chains: Sequence[Sequence[bytes]], pool: CertPool
) -> tuple[int, bytes] | None:
    """(depth, certificate) of the lowest certificate presented that ``record`` matches."""
    selector, mtype = record["selector"], record["mtype"]
    if selector not in (0, 1) or mtype not in (0, 1, 2):
        return None  # an unknown selector or type matches nothing (RFC 6698 section 2.1)
    found: tuple[int, bytes] | None = None
    for chain in chains:
        for depth, cert in enumerate(chain):
            if pool.digest(cert, selector, mtype) == record["data"]:
                if found is None or depth < found[0]:
                    found = (depth, cert)
                break
    return found


def _check_records(
    rrsets: Sequence[Mapping[str, Any]], per_base: Mapping[str, int]
) -> pd.DataFrame:
    # One pool and one name cache for the whole call: providers present the same
    # certificates on every host, so each is hashed and parsed once.
    pool = CertPool()
    anchors: dict[tuple[bytes, int], _Anchor] = {}
    rows: list[dict[str, Any]] = []
    for obs in rrsets:
        chains = sorted({tuple(chain) for chain in obs["chains"] or ()})
        for record in obs["tlsa"] or ():
            found = _lowest_match(record, chains, pool)
            anchor = None
            if found is not None:
                depth, cert = found
                if (cert, depth) not in anchors:
                    anchors[cert, depth] = _anchor(cert, depth)
                anchor = anchors[cert, depth]
            rows.append(
                {
                    "base": obs["base"],
                    "triplet": f"{record['usage']} {record['selector']} {record['mtype']}",
                    "usage": record["usage"],
                    "selector": record["selector"],
                    "mtype": record["mtype"],
                    "presented": bool(chains),
                    "matches": found is not None,
                    "depth": found[0] if found else -1,
                    "anchor": anchor.name if anchor else None,
                    "anchor_org": anchor.organization if anchor else None,
                    "anchor_kind": anchor.kind if anchor else None,
                    "host_verdict": obs["verdict"],
                    "domains": int(per_base.get(obs["base"], 0)),
                }
            )
    out = pd.DataFrame(rows, columns=_RECORD_COLUMNS)
    for column in ("usage", "selector", "mtype", "depth", "domains"):
        out[column] = out[column].astype("int64")
    for column in ("presented", "matches"):
        out[column] = out[column].astype("bool")
    return out


_RECORD_COLUMNS = (
    "base", "triplet", "usage", "selector", "mtype", "presented", "matches", "depth",
    "anchor", "anchor_org", "anchor_kind", "host_verdict", "domains",
)  # fmt: skip


def tlsa_records(
    scan: duckdb.DuckDBPyRelation, *, observed: Observed | None = None
) -> pd.DataFrame:
    """Every record of every secure TLSA RRset, checked against what the host presented.

    For each record, the certificates of the chains the host's addresses
    presented are hashed as the record's selector and matching type say, and
    the depths that match are noted. Columns: ``base`` (TLSA base domain),
    ``triplet``, ``usage``, ``selector``, ``mtype``, ``presented`` (a chain
    was obtained from some address), ``matches`` (the record matches a
    presented certificate), ``depth`` (lowest matching depth, -1 for none),
    ``anchor`` / ``anchor_org`` / ``anchor_kind`` (the matching certificate's
    subject CN and O, and leaf, intermediate or root), ``host_verdict``,
    ``domains`` (domains with an MX host using this RRset).
    """
    return (observed or observe(scan)).records


def rollover_readiness(
    scan: duckdb.DuckDBPyRelation, *, observed: Observed | None = None
) -> pd.DataFrame:
    """How secure TLSA RRsets are prepared for a key or certificate change.

    Measures, each over distinct RRsets: ``rrsets`` (all); ``single_record``;
    ``multiple_records`` (two or more); ``ee_and_ta`` (a "3 1 1" and a "2 1 1"
    record); ``two_ee_keys`` (two or more DANE-EE SPKI records: current and
    next key); and, among RRsets whose host presented a chain
    (``with_chain``), ``unmatched_record`` (some record matches no certificate
    presented: a next key published ahead, or a stale record left behind) and
    ``nothing_matches`` (no record matches: broken). Columns:
    ``measure``, ``rrsets``, ``share`` (of ``rrsets``, or of ``with_chain`` for
    the last two), ``domains`` (distinct domains with such an RRset).
    """
    observed = observed or observe(scan)
    records = observed.records
    per = (
        records.assign(
            ee=records["triplet"] == "3 1 1",
            ta=records["triplet"] == "2 1 1",
            ee_key=(records["usage"] == 3) & (records["selector"] == 1),
        )
        .groupby("base")
        .agg(
            n=("triplet", "size"),
            ee=("ee", "any"),
            ta=("ta", "any"),
            ee_keys=("ee_key", "sum"),
            presented=("presented", "any"),
            all_match=("matches", "all"),
            any_match=("matches", "any"),
        )
    )
    per["ee_ta"] = per["ee"] & per["ta"]
    with_chain = per[per["presented"]]
    measures: list[tuple[str, pd.Index, int]] = [
        ("rrsets", per.index, len(per)),
        ("single_record", per.index[per["n"] == 1], len(per)),
        ("multiple_records", per.index[per["n"] >= 2], len(per)),
        ("ee_and_ta", per.index[per["ee_ta"].astype(bool)], len(per)),
        ("two_ee_keys", per.index[per["ee_keys"] >= 2], len(per)),
        ("with_chain", with_chain.index, len(per)),
        ("unmatched_record", with_chain.index[~with_chain["all_match"]], len(with_chain)),
        ("nothing_matches", with_chain.index[~with_chain["any_match"]], len(with_chain)),
    ]
    return pd.DataFrame(
        {
            "measure": [m for m, _, _ in measures],
            "rrsets": [len(index) for _, index, _ in measures],
            "share": [len(index) / whole if whole else 0.0 for _, index, whole in measures],
            "domains": [observed.domains(index) for _, index, _ in measures],
        }
    )


_EXPOSURES = ("ee_backup", "root_anchor", "intermediate_only", "unmatched", "no_chain")


def _exposures(records: pd.DataFrame) -> pd.Series:
    """Exposure class (:func:`ta_exposure`) of every RRset holding a DANE-TA record."""
    ta_match = (records["usage"] == 2) & records["matches"]
    flags = (
        pd.DataFrame(
            {
                "base": records["base"],
                "ta": records["usage"] == 2,
                "presented": records["presented"],
                "ee_backup": (records["usage"] == 3) & (records["depth"] == 0),
                "root_anchor": ta_match & (records["anchor_kind"] == "root"),
                "intermediate_only": ta_match & (records["anchor_kind"] == "intermediate"),
            }
        )
        .groupby("base")
        .any()
    )
    flags = flags[flags["ta"]]
    # First matching class wins, in the order of the ta_exposure docstring.
    classes = np.select(
        [~flags["presented"], flags["ee_backup"], flags["root_anchor"], flags["intermediate_only"]],
        ["no_chain", "ee_backup", "root_anchor", "intermediate_only"],
        default="unmatched",
    )
    return pd.Series(classes, index=flags.index, dtype="str")


def ta_exposure(scan: duckdb.DuckDBPyRelation, *, observed: Observed | None = None) -> pd.DataFrame:
    """What happens to RRsets with DANE-TA records when the CA changes intermediates.

    Every RRset holding a DANE-TA(2) record is put in one class, first match:
    ``no_chain`` (no certificate was presented: cannot tell); ``ee_backup``
    (a DANE-EE record matches the leaf: survives if the key is kept);
    ``root_anchor`` (a DANE-TA record matches a root); ``intermediate_only``
    (only intermediates match: breaks when the CA issues from another
    intermediate); ``unmatched`` (no DANE-TA record matches a presented
    certificate: a stale pin, or an anchor published only in DNS).
    Columns: ``exposure``, ``rrsets``, ``domains``, ``share`` (of RRsets).
    """
    observed = observed or observe(scan)
    classes = _exposures(observed.records)
    total = len(classes)
    rrsets = [int((classes == e).sum()) for e in _EXPOSURES]
    return pd.DataFrame(
        {
            "exposure": list(_EXPOSURES),
            "rrsets": rrsets,
            "domains": [observed.domains(classes.index[classes == e]) for e in _EXPOSURES],
            "share": [n / total if total else 0.0 for n in rrsets],
        }
    )


UNMATCHED_ANCHOR = "(matches no certificate presented)"


def ta_anchors(scan: duckdb.DuckDBPyRelation, *, observed: Observed | None = None) -> pd.DataFrame:
    """Which certificates DANE-TA records pin, and how many RRsets depend on each.

    One row per pinned certificate (by subject CN and O, and whether it is a
    root or an intermediate), plus one row, ``anchor`` =
    :data:`UNMATCHED_ANCHOR` and ``anchor_kind = 'unmatched'``, for DANE-TA
    records that match no certificate presented. ``rrsets`` / ``domains``
    count RRsets pinning it and the domains using them; ``at_risk_rrsets`` /
    ``at_risk_domains`` those whose only match is this intermediate
    (``intermediate_only`` in :func:`ta_exposure`): they break when the CA
    issues from another intermediate. Columns: ``anchor``, ``anchor_org``,
    ``anchor_kind``, ``rrsets``, ``domains``, ``at_risk_rrsets``,
    ``at_risk_domains``; most RRsets first.
    """
    observed = observed or observe(scan)
    classes = _exposures(observed.records)
    at_risk = set(classes.index[classes == "intermediate_only"])
    ta = observed.records[observed.records["usage"] == 2].fillna(
        {"anchor": UNMATCHED_ANCHOR, "anchor_org": "", "anchor_kind": "unmatched"}
    )
    keys = ["anchor", "anchor_org", "anchor_kind"]
    rows = []
    for (anchor, org, kind), group in ta.groupby(keys, sort=False):
        bases = set(group["base"])
        risky = bases & at_risk if kind == "intermediate" else set()
        counts = (len(bases), observed.domains(bases), len(risky), observed.domains(risky))
        rows.append((anchor, org, kind, *counts))
    columns = [*keys, "rrsets", "domains", "at_risk_rrsets", "at_risk_domains"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(
        ["rrsets", "anchor"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


# -- TLS ----------------------------------------------------------------------------------


def _tls_breakdown(scan: duckdb.DuckDBPyRelation, column: str) -> pd.DataFrame:
    raw = _sql(
        scan,
        f"""
        WITH {_secure_hosts("h.addresses AS addresses")},
        endpoints AS (
            SELECT domain, host, unnest(addresses) AS a FROM secure
        ),
        ok AS (
            SELECT domain, host || ' ' || a.address AS endpoint,
                   CAST(a.{column} AS VARCHAR) AS value
            FROM endpoints WHERE a.smtp_status = 'tls_ok'
        )
        SELECT coalesce(value, 'unknown') AS {column}, count(DISTINCT endpoint) AS endpoints,
               count(DISTINCT domain) AS domains,
               (SELECT count(DISTINCT endpoint) FROM ok) AS total
        FROM ok GROUP BY 1 ORDER BY endpoints DESC, 1
        """,
    )
    out = raw[[column, "endpoints", "domains"]].copy()
    out[column] = out[column].astype("str")
    out["share"] = _share(raw["endpoints"], raw["total"])
    return out.reset_index(drop=True)


def tls_versions(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """TLS versions negotiated by the endpoints of MX hosts with secure TLSA records.

    Only endpoints where STARTTLS and the handshake succeeded. Columns:
    ``tls_version``, ``endpoints``, ``domains``, ``share`` (of endpoints).
    """
    return _tls_breakdown(scan, "tls_version")


def tls_ciphers(scan: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """Cipher suites negotiated on the same endpoints as :func:`tls_versions`.

    Columns: ``cipher``, ``endpoints``, ``domains``, ``share`` (of endpoints).
    """
    return _tls_breakdown(scan, "cipher")


# -- two scans -----------------------------------------------------------------------------


def _states(scan: duckdb.DuckDBPyRelation, name: str) -> duckdb.DuckDBPyRelation:
    failing = _in(_FAILING_HOST_VERDICTS)
    return _query(
        scan,
        f"""
        SELECT domain, CASE
            WHEN verdict = 'dane_valid' THEN 'valid'
            WHEN verdict IN ('dane_partial', 'dane_invalid') THEN 'failing'
            WHEN verdict = 'dnssec_bogus' THEN 'bogus'
            -- A host can fail DANE only under a secure MX RRset (see _SECURE_TLSA).
            WHEN mx_dnssec = 'secure' THEN CASE
                WHEN coalesce(list_bool_or([h.verdict IN {failing} FOR h IN mx_hosts]), false)
                THEN 'failing' ELSE 'none' END
            ELSE 'none' END AS {name}
        FROM scan
        """,
    )


def _joined_states(
    old: duckdb.DuckDBPyRelation, new: duckdb.DuckDBPyRelation, how: str
) -> duckdb.DuckDBPyRelation:
    # Aliases: a relation compared with itself (or two over one table) would clash.
    left = _states(old, "old_state").set_alias("old_states")
    right = _states(new, "new_state").set_alias("new_states")
    return left.join(right, "domain", how=how)


def _change(old: str, new: str) -> str:
    if old == "absent":
        return "only in new"
    if new == "absent":
        return "only in old"
    if old == new:
        return "unchanged"
    return CHANGES.get((old, new), "other")


def scan_diff(old: duckdb.DuckDBPyRelation, new: duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """How the DANE state of each domain changed between two scans.

    A domain's state in one scan is ``valid`` (verdict ``dane_valid``),
    ``failing`` (a DANE verdict other than valid, or an MX host whose DANE
    check failed), ``bogus`` (MX RRset failed DNSSEC validation), ``none``, or
    ``absent`` (not in that scan). Pairs of states are named by
    :data:`CHANGES` (adopted, adopted broken, broke, fixed, dropped), and
    ``unchanged``, ``only in old``, ``only in new``, ``other``. Both relations
    must belong to the same DuckDB connection. Columns: ``change``,
    ``old_state``, ``new_state``, ``domains``; one row per pair of states seen.
    """
    joined = _joined_states(old, new, how="outer")
    raw = _query(
        joined,
        "SELECT coalesce(old_state, 'absent') AS old_state, "
        "coalesce(new_state, 'absent') AS new_state, count(*) AS domains FROM j GROUP BY ALL",
        "j",
    ).df()
    raw.insert(
        0,
        "change",
        [_change(o, n) for o, n in zip(raw["old_state"], raw["new_state"], strict=True)],
    )
    raw["domains"] = raw["domains"].astype("int64")
    return raw.sort_values(["change", "old_state", "new_state"], kind="stable").reset_index(
        drop=True
    )


def changed_domains(
    old: duckdb.DuckDBPyRelation,
    new: duckdb.DuckDBPyRelation,
    change: str,
    *,
    limit: int | None = 1000,
) -> pd.DataFrame:
    """The domains behind one ``change`` of :func:`scan_diff`, sorted by name.

    Columns: ``domain``, ``old_state``, ``new_state``.
    """
    pairs = [pair for pair, name in CHANGES.items() if name == change]
    if not pairs:
        raise ValueError(f"unknown change {change!r}: one of {sorted(set(CHANGES.values()))}")
    condition = " OR ".join(f"(old_state = '{o}' AND new_state = '{n}')" for o, n in pairs)
    joined = _joined_states(old, new, how="inner")
    query = f"SELECT domain, old_state, new_state FROM j WHERE {condition} ORDER BY domain"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return _query(joined, query, "j").df()
