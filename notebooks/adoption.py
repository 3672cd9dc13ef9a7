# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DANE for SMTP: adoption in one scan
#
# The tables and figures of a DANE survey, from one danescan dataset: how many
# domains could use DANE, how many do, how many are broken and why, who the
# providers are, how records and keys roll over, and (given an earlier scan)
# what changed. Every number comes from `analysis.metrics`; this notebook only
# calls it. Definitions, units and the mapping to the failure categories of
# Lee et al. (USENIX Security 2020) are in the docstrings of `analysis.metrics`
# and of its modules (`analysis.metrics.failures` for the categories).
#
# Set `DANESCAN_RESULTS` to the dataset folder (`results/<scan-id>/`) and,
# optionally, `DANESCAN_COMPARE` to an earlier scan.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("DANESCAN_RESULTS", "results/latest")
COMPARE = os.environ.get("DANESCAN_COMPARE") or None

# %%
# %matplotlib inline
import duckdb
from IPython.display import display

from analysis import figures, load, metrics, report

connection = duckdb.connect()
scan = load.load(RESULTS, name="scan", connection=connection)
old = load.load_domains(COMPARE, name="old", connection=connection) if COMPARE else None
manifest = scan.dataset.manifest
print(f"{RESULTS}: {len(scan.dataset.parts)} part files, schema {scan.dataset.schema_version}")
if manifest is not None:
    print(", ".join(f"{label}: {text}" for label, text in report.provenance(manifest)))

# %% [markdown]
# ## The funnel
#
# Domains; with mail hosts (MX or implicit MX); with a DNSSEC-secure MX RRset;
# with at least one MX host whose TLSA RRset is secure; DANE-valid.

# %%
funnel = metrics.funnel(scan.domains)
display(funnel)
display(figures.funnel_figure(funnel))

# %%
by_tld = metrics.funnel_by_tld(scan.domains, top=15)
display(by_tld.pivot(index="tld", columns="stage", values="domains"))
display(figures.tld_figure(by_tld))

# %% [markdown]
# ## Verdicts

# %%
domain_verdicts = metrics.domain_verdicts(scan.domains)
host_verdicts = metrics.host_verdicts(scan.domains)
display(domain_verdicts)
display(host_verdicts)
display(figures.verdict_figure(domain_verdicts, host_verdicts))

# %% [markdown]
# ## TLSA parameters, counted per record, per RRset and per domain

# %%
triplets = metrics.tlsa_triplets(scan.dane)
display(triplets.pivot(index="triplet", columns="unit", values="share"))
display(figures.triplet_figure(triplets))

# %% [markdown]
# ## Failures, in the categories of Lee et al. and in our finer statuses

# %%
display(metrics.failure_categories(scan.dane))
display(metrics.failure_taxonomy(scan.dane))

# %% [markdown]
# ## Providers

# %%
operators = metrics.provider_concentration(scan.dane, top=15)
display(operators)
display(metrics.provider_concentration(scan.dane, by="host", top=15))
display(figures.provider_figure(operators))

# %% [markdown]
# ## Rollover readiness and DANE-TA anchors

# %%
display(metrics.rollover_readiness(scan.dane))
display(metrics.ta_anchors(scan.dane))
display(metrics.ta_exposure(scan.dane))

# %% [markdown]
# ## TLS on DANE hosts

# %%
display(metrics.tls_versions(scan.dane))
display(metrics.tls_ciphers(scan.dane))

# %% [markdown]
# ## Beside DANE: MTA-STS, TLS-RPT, the policy a sender applies
#
# MTA-STS (RFC 8461) by record, fetch and mode; TLS-RPT (RFC 8460); domains
# with mail by the protections they publish; the policy a sender that
# implements DANE and MTA-STS applies (DANE first, section 2) and its
# outcome; the relaxed DANE reading (RFC 7672 2.2.1); what changes within
# `--days-ahead` days. A dataset of schema 4 counts as "not_looked_up".

# %%
from analysis.beside import load_beside

beside = load_beside(scan.dataset, connection)
display(metrics.mta_sts_adoption(beside.domains))
display(metrics.tlsrpt_adoption(beside.domains))
display(metrics.dane_sts_overlap(beside.domains))
display(metrics.sts_host_statuses(beside.sts_hosts))
effective = metrics.effective_policies(beside.domains)
display(effective)
if not effective.empty:
    display(figures.effective_figure(effective))
display(metrics.relaxed_dane(beside.domains))
display(metrics.breaking_within(beside.domains))

# %% [markdown]
# ## Changes since the earlier scan

# %%
diff = metrics.scan_diff(old.domains, scan.domains) if old is not None else None
if diff is not None:
    display(diff)
    display(figures.diff_figure(diff))

# %% [markdown]
# ## Headline numbers
#
# The same numbers as above, as one JSON object, for scripts that execute this
# notebook and read its output.

# %% tags=["headline"]
headline = {
    "funnel": dict(zip(funnel["stage"].astype(str), funnel["domains"].astype(int))),
    "verdicts": dict(zip(domain_verdicts["verdict"], domain_verdicts["domains"].astype(int))),
    "host_verdicts": dict(zip(host_verdicts["verdict"], host_verdicts["pairs"].astype(int))),
}
display({"application/json": headline}, raw=True)
