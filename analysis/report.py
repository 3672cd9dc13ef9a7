"""``scan report RESULTS -o report.html [--compare OLD_RESULTS]``: one HTML file.

Assembles the tables of analysis.metrics and the figures of analysis.figures
into a single self-contained page: figures are embedded as base64 PNG, styles
are inline, and the page loads nothing from anywhere, so it can be mailed,
archived next to the dataset, or opened offline. Numbers are printed exactly
(thousands separated); shares as percentages.

Each figure is an ``<img>`` with a fixed id (:data:`FIGURE_IDS`) and an alt
text, and each table has a fixed id, so the page can be checked by machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures, metrics
from analysis.beside import Beside, load_beside
from analysis.load import DatasetError, Manifest, Scan, ScanDomains, load, load_domains

__all__ = [
    "DIFF_FIGURE_ID",
    "FIGURE_IDS",
    "build_html",
    "html_figure",
    "html_table",
    "main",
    "render_report",
]

FIGURE_IDS: tuple[str, ...] = (
    "fig-funnel",
    "fig-tld",
    "fig-verdicts",
    "fig-triplets",
    "fig-providers",
)
DIFF_FIGURE_ID = "fig-diff"
TOP = 15  # rows of the long-tailed tables (TLDs, providers, ciphers)

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d2733; margin: 2em auto;
       max-width: 60em; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e3e6ea; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption, .note { color: #5a6573; font-size: .88em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; }
dt { font-weight: 600; }
"""


@dataclass(frozen=True, slots=True)
class HtmlBlock:
    """One piece of a section: already rendered HTML."""

    html: str


def _cell(column: str, value: object) -> tuple[str, bool]:
    """The text of one table cell, and whether it is a number (right-aligned)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if column.startswith(("share", "cumulative")):
            return f"{value:.2%}", True
        return f"{value:,.2f}", True
    return str(value), False


def html_table(frame: pd.DataFrame, table_id: str, caption: str) -> HtmlBlock:
    """``frame`` as an HTML table: counts with separators, shares as percentages."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            text, numeric = _cell(str(column), _python(value))
            css = ' class="n"' if numeric else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return HtmlBlock(
        f'<table id="{table_id}"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _python(value: object) -> object:
    """numpy scalars as Python ones, so formatting sees int or float."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def html_figure(fig: Figure, figure_id: str, alt: str, caption: str) -> HtmlBlock:
    """``fig`` as a ``<figure>`` with an embedded PNG ``<img id="{figure_id}-img">``."""
    png = base64.b64encode(figures.to_png(fig)).decode("ascii")
    return HtmlBlock(
        f'<figure id="{figure_id}"><img id="{figure_id}-img" alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{png}"><figcaption>{html.escape(caption)}</figcaption>'
        "</figure>"
    )


def _note(text: str) -> HtmlBlock:
    return HtmlBlock(f'<p class="note">{html.escape(text)}</p>')


def _section(section_id: str, title: str, *blocks: HtmlBlock) -> str:
    body = "\n".join(b.html for b in blocks)
    return f'<section id="{section_id}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def provenance(manifest: Manifest) -> list[tuple[str, str]]:
    """What the manifest says about the scan, as (label, text) pairs: the
    scanner and its version, the times, how the scan ended. The report's
    header and the notebook show these."""
    status = manifest.status.value if manifest.status is not None else "unknown"
    facts = [
        ("scanner", manifest.scanner or "unknown"),
        ("scanner version", manifest.scanner_version or "unknown"),
        ("started", _when(manifest.started_at)),
        ("finished", _when(manifest.finished_at)),
        ("status", f"{status}: {manifest.failure}" if manifest.failure else status),
    ]
    if manifest.counts.transient:
        facts.append(("rows left transient", f"{manifest.counts.transient:,}"))
    return facts


def _when(moment: dt.datetime | None) -> str:
    return "unknown" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


def _header(scan: Scan, old: ScanDomains | None) -> str:
    manifest = scan.dataset.manifest
    facts = [
        ("dataset", scan.dataset.location),
        ("part files", f"{len(scan.dataset.parts):,}"),
        ("schema version", scan.dataset.schema_version),
    ]
    if manifest is not None:
        facts += provenance(manifest)
    if old is not None:
        facts.append(("compared with", old.dataset.location))
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f"<h1>DANE for SMTP: scan report</h1><dl>{items}</dl>"


def _beside_section(beside: Beside) -> str:
    """MTA-STS, TLS-RPT, the effective policy, the relaxed reading, expiry."""
    effective = metrics.effective_policies(beside.domains)
    blocks = [
        html_table(metrics.mta_sts_adoption(beside.domains), "mta-sts-table", "MTA-STS"),
        html_table(metrics.tlsrpt_adoption(beside.domains), "tlsrpt-table", "TLS-RPT"),
        html_table(
            metrics.dane_sts_overlap(beside.domains),
            "overlap-table",
            "Domains with mail, by the protections they publish (MTA-STS: enforce or testing)",
        ),
        html_table(
            metrics.sts_host_statuses(beside.sts_hosts),
            "sts-hosts-table",
            "MX hosts under an MTA-STS record, per mode and status (RFC 8461 section 4)",
        ),
        html_table(effective, "effective-table", "What a sender with DANE and MTA-STS applies"),
        html_table(
            metrics.relaxed_dane(beside.domains),
            "relaxed-table",
            "Verdicts of a sender that uses DANE under an insecure MX RRset (RFC 7672 2.2.1)",
        ),
        html_table(
            metrics.breaking_within(beside.domains),
            "ahead-table",
            "What changes --days-ahead days later (empty without --days-ahead)",
        ),
    ]
    if not effective.empty:
        blocks.append(
            html_figure(
                figures.effective_figure(effective),
                "fig-effective",
                "Domains per effective policy, split by outcome",
                "DANE first (RFC 8461 section 2); opportunistic: TLS, not authenticated.",
            )
        )
    return _section("beside", "Beside DANE: MTA-STS, TLS-RPT, REQUIRETLS", *blocks)


def build_html(scan: Scan, old: ScanDomains | None = None, beside: Beside | None = None) -> str:
    """The report of ``scan`` (and its difference from ``old``) as an HTML string;
    ``beside``: the columns beside DANE (analysis.beside), a section of their own."""
    funnel = metrics.funnel(scan.domains)
    by_tld = metrics.funnel_by_tld(scan.domains, top=TOP)
    domain_verdicts = metrics.domain_verdicts(scan.domains)
    host_verdicts = metrics.host_verdicts(scan.domains)
    triplets = metrics.tlsa_triplets(scan.dane)
    operators = metrics.provider_concentration(scan.dane, top=TOP)
    hosts = metrics.provider_concentration(scan.dane, by="host", top=TOP)
    checks = metrics.check_records(scan.dane)  # shared by the rollover and anchor tables
    tld_wide = by_tld.pivot(index="tld", columns="stage", values="domains")
    tld_wide = tld_wide.reset_index().rename_axis(columns=None)
    sections = [
        _header(scan, old),
        _section(
            "funnel",
            "Adoption funnel",
            html_table(funnel.drop(columns="stage"), "funnel-table", "Domains at each stage"),
            html_figure(
                figures.funnel_figure(funnel),
                "fig-funnel",
                "Funnel: domains, with MX, with secure MX, with secure TLSA, DANE-valid",
                "Each stage is a subset of the one before (log scale).",
            ),
            html_table(tld_wide, "tld-table", f"The funnel per TLD (largest {TOP})"),
            html_figure(
                figures.tld_figure(by_tld, top=TOP),
                "fig-tld",
                "Share of domains with an MX host with secure TLSA, per TLD",
                "Share of each TLD's domains with an MX host with secure TLSA records.",
            ),
        ),
        _section(
            "verdicts",
            "Verdicts",
            html_table(domain_verdicts, "domain-verdicts", "Domains per verdict"),
            html_table(host_verdicts, "host-verdicts", "MX hosts per DANE verdict"),
            html_figure(
                figures.verdict_figure(domain_verdicts, host_verdicts),
                "fig-verdicts",
                "Verdict distributions of domains and of MX hosts",
                "pairs: (domain, MX host) pairs; hosts: distinct host names (log scale).",
            ),
        ),
        _section(
            "tlsa",
            "TLSA parameters",
            html_table(
                triplets.drop(columns=["usage", "selector", "mtype"]),
                "triplets-table",
                "Usage, selector, matching type: per record, per RRset, per domain",
            ),
            html_figure(
                figures.triplet_figure(triplets),
                "fig-triplets",
                "Shares of TLSA parameter triplets per record, RRset and domain",
                "The same records counted three ways; RRset and domain shares overlap.",
            ),
        ),
        _section(
            "failures",
            "Failures",
            _note(
                "Categories of Lee et al., USENIX Security 2020, with the finer statuses "
                "of this scan. A domain with failures of several kinds counts under each."
            ),
            html_table(metrics.failure_categories(scan.dane), "failure-categories", "Per category"),
            html_table(metrics.failure_taxonomy(scan.dane), "failure-statuses", "Per status"),
        ),
        _section(
            "providers",
            "Providers",
            html_table(operators, "operators-table", f"Operators of DANE MX hosts (top {TOP})"),
            html_figure(
                figures.provider_figure(operators, top=10),
                "fig-providers",
                "Share of DANE domains per operator, with the cumulative share",
                "Operator: the registered domain of the MX host name, by the ICANN "
                "section of the Public Suffix List.",
            ),
            html_table(hosts, "hosts-table", f"DANE MX hosts (top {TOP})"),
        ),
        _section(
            "rollover",
            "Rollover readiness",
            html_table(
                metrics.rollover_readiness(scan.dane, checks=checks),
                "rollover-table",
                "Secure TLSA RRsets",
            ),
        ),
        _section(
            "anchors",
            "DANE-TA trust anchors",
            html_table(
                metrics.ta_anchors(scan.dane, checks=checks),
                "anchors-table",
                "Pinned certificates",
            ),
            html_table(
                metrics.ta_exposure(scan.dane, checks=checks),
                "exposure-table",
                "RRsets with DANE-TA records: what an intermediate change does to them",
            ),
        ),
        _section(
            "tls",
            "TLS on DANE hosts",
            html_table(metrics.tls_versions(scan.dane), "tls-versions", "TLS versions"),
            html_table(metrics.tls_ciphers(scan.dane).head(TOP), "tls-ciphers", "Cipher suites"),
        ),
    ]
    if beside is not None:
        sections.append(_beside_section(beside))
    if old is not None:
        diff = metrics.scan_diff(old.domains, scan.domains)
        sections.append(
            _section(
                "diff",
                "Changes since the earlier scan",
                html_table(diff, "diff-table", "Domains per change of DANE state"),
                html_figure(
                    figures.diff_figure(diff),
                    DIFF_FIGURE_ID,
                    "Domains that adopted, dropped, broke or fixed DANE between the scans",
                    "Unchanged domains are left out.",
                ),
            )
        )
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>DANE scan report</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def render_report(results: Path | str, output: Path, compare: Path | str | None = None) -> None:
    """Load ``results`` (and ``compare``, the earlier scan) and write the report to ``output``."""
    connection = duckdb.connect()
    scan = load(results, name="new", connection=connection)
    old = None
    if compare is not None:
        # The earlier scan is compared by domain state only: its domains suffice.
        old = load_domains(compare, name="old", connection=connection)
    page = build_html(scan, old, load_beside(scan.dataset, connection))
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, output)


def parser() -> argparse.ArgumentParser:
    """The arguments of `scan report` (scanner.cli registers this command)."""
    parser = argparse.ArgumentParser(
        prog="scan report", description="Write one self-contained HTML report of a scan."
    )
    parser.add_argument("results", help="the scan dataset (folder of part files, or a URI)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    parser.add_argument("--compare", metavar="OLD_RESULTS", help="an earlier scan to compare with")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:
        render_report(args.results, args.output, args.compare)
    except DatasetError as exc:
        print(f"scan report: {exc}", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
