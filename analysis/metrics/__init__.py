"""The measures of a DANE survey, as pure functions returning tidy DataFrames.

Every function takes a DuckDB relation whose columns follow the dataset schema
(scanner.output.schema.SCHEMA): the whole dataset (analysis.load.full_relation),
one of the projected relations of analysis.load.Scan, or a relation built in
memory from a few hand-written rows. Functions run SQL over that relation and
return small pandas frames: one observation per row, one variable per column,
counts as integers and shares as floats in [0, 1]. Nothing here reads files,
draws, or keeps state between calls.

One module a topic, each with the RFC sections and the definitions it uses:

- :mod:`~analysis.metrics.funnel`: the adoption funnel, RFC 7672 section 2.2
  in order (:func:`funnel`, :func:`funnel_by_tld`);
- :mod:`~analysis.metrics.verdicts`: domains and MX hosts per verdict;
- :mod:`~analysis.metrics.triplets`: TLSA usage, selector and matching type;
- :mod:`~analysis.metrics.failures`: failures in the categories of Lee et al.
  (USENIX Security 2020), the mapping in its docstring;
- :mod:`~analysis.metrics.providers`: who operates the MX hosts;
- :mod:`~analysis.metrics.records`: every record checked against the
  certificates presented (:func:`check_records`, :func:`tlsa_records`);
- :mod:`~analysis.metrics.rollover`: readiness for a key or CA change, and
  what DANE-TA records pin;
- :mod:`~analysis.metrics.tls`: TLS versions and cipher suites;
- :mod:`~analysis.metrics.diff`: what changed between two scans;
- :mod:`~analysis.metrics.policies`: beside DANE: MTA-STS, TLS-RPT, the
  effective policy, the relaxed reading, what breaks within N days (over
  analysis.beside's relations).

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
"""

from analysis.metrics.diff import CHANGES, changed_domains, scan_diff
from analysis.metrics.failures import (
    FAILURE_STATUSES,
    LEE_CATEGORIES,
    FailureStatus,
    failure_categories,
    failure_taxonomy,
)
from analysis.metrics.funnel import FUNNEL_STAGES, Stage, funnel, funnel_by_tld
from analysis.metrics.policies import (
    breaking_within,
    dane_sts_overlap,
    effective_policies,
    mta_sts_adoption,
    relaxed_dane,
    sts_host_statuses,
    tlsrpt_adoption,
)
from analysis.metrics.providers import operator, provider_concentration
from analysis.metrics.records import RecordChecks, check_records, tlsa_records
from analysis.metrics.rollover import UNMATCHED_ANCHOR, rollover_readiness, ta_anchors, ta_exposure
from analysis.metrics.tls import tls_ciphers, tls_versions
from analysis.metrics.triplets import tlsa_triplets
from analysis.metrics.verdicts import domain_verdicts, host_verdicts

__all__ = [
    "CHANGES",
    "FAILURE_STATUSES",
    "FUNNEL_STAGES",
    "LEE_CATEGORIES",
    "UNMATCHED_ANCHOR",
    "FailureStatus",
    "RecordChecks",
    "Stage",
    "breaking_within",
    "changed_domains",
    "check_records",
    "dane_sts_overlap",
    "domain_verdicts",
    "effective_policies",
    "failure_categories",
    "failure_taxonomy",
    "funnel",
    "funnel_by_tld",
    "host_verdicts",
    "mta_sts_adoption",
    "operator",
    "provider_concentration",
    "relaxed_dane",
    "rollover_readiness",
    "scan_diff",
    "sts_host_statuses",
    "ta_anchors",
    "ta_exposure",
    "tls_ciphers",
    "tls_versions",
    "tlsa_records",
    "tlsa_triplets",
    "tlsrpt_adoption",
]
