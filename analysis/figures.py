"""Figures of a DANE survey, drawn from the frames of analysis.metrics.

Each function takes the DataFrame a metric returned and gives back a
matplotlib Figure; nothing is computed here beyond choosing what to show.
Figures are built with the object API (``matplotlib.figure.Figure``), never
with pyplot, so drawing holds no global state and needs no display: a report
renders them with :func:`to_png` or :func:`to_svg`, a notebook shows them as
they are.

Counts across a survey span five orders of magnitude (millions of domains,
hundreds with DANE), so the funnel and the verdict distributions use a
logarithmic axis and print the exact numbers on the bars.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

__all__ = [
    "diff_figure",
    "funnel_figure",
    "provider_figure",
    "tld_figure",
    "to_png",
    "to_svg",
    "triplet_figure",
    "verdict_figure",
]

_WIDTH = 7.5  # inches: one column of a two-column paper at 100 dpi on screen
_BLUE = "#3a6ea5"
_ORANGE = "#d9822b"
_GREY = "#9aa5b1"


def _figure(height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(_WIDTH, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, list(axes[0])


def _label_bars(ax: Axes, values: Sequence[int], shares: Sequence[float] | None = None) -> None:
    for i, value in enumerate(values):
        text = f"{value:,}"
        if shares is not None:
            text += f"  ({shares[i]:.2%})"
        ax.annotate(
            text,
            (max(value, 1), i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )


def funnel_figure(funnel: pd.DataFrame) -> Figure:
    """Horizontal bars, one per stage, with the count and the share of all domains."""
    fig, (ax,) = _figure(3.0)
    labels = list(funnel["label"])
    values = [int(v) for v in funnel["domains"]]
    ax.barh(range(len(values)), [max(v, 1) for v in values], color=_BLUE)
    ax.set_yticks(range(len(values)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(1, max([*values, 10]) * 30)
    ax.set_xlabel("domains (log scale)")
    ax.set_title("DANE adoption funnel")
    _label_bars(ax, values, list(funnel["share_of_all"]))
    return fig


def verdict_figure(domain_verdicts: pd.DataFrame, host_verdicts: pd.DataFrame) -> Figure:
    """Two panels: domains per DomainVerdict, (domain, MX host) pairs per DaneVerdict."""
    fig, (left, right) = _figure(3.6, ncols=2)
    for ax, frame, column, title in (
        (left, domain_verdicts, "domains", "domains per verdict"),
        (right, host_verdicts, "pairs", "MX hosts per DANE verdict"),
    ):
        shown = frame[frame[column] > 0]
        values = [int(v) for v in shown[column]]
        ax.barh(range(len(values)), values, color=_BLUE)
        ax.set_yticks(range(len(values)), list(shown["verdict"]), fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(0.8, max([*values, 10]) * 40)
        ax.set_title(title, fontsize=10)
        _label_bars(ax, values)
    return fig


def effective_figure(effective: pd.DataFrame) -> Figure:
    """Domains per effective policy, each bar split by outcome."""
    fig, (ax,) = _figure(3.0)
    wide = effective.pivot_table(
        index="policy", columns="outcome", values="domains", aggfunc="sum", fill_value=0
    )
    left = [0] * len(wide)
    for column in wide.columns:
        values = [int(v) for v in wide[column]]
        ax.barh(range(len(wide)), values, left=left, label=str(column))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(wide)), list(wide.index), fontsize=8)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("effective policy of a sender with DANE and MTA-STS, by outcome", fontsize=10)
    return fig


def triplet_figure(triplets: pd.DataFrame, top: int = 8) -> Figure:
    """Share of each TLSA triplet per record, per RRset and per domain, side by side."""
    per_record = triplets[triplets["unit"] == "record"]
    names = list(per_record.sort_values("count", ascending=False)["triplet"].head(top))
    fig, (ax,) = _figure(0.45 * max(len(names), 2) + 1.2)
    units = [("record", _BLUE), ("rrset", _ORANGE), ("domain", _GREY)]
    height = 0.8 / len(units)
    for offset, (unit, colour) in enumerate(units):
        frame = triplets[triplets["unit"] == unit].set_index("triplet")
        shares = [float(frame["share"].get(name, 0.0)) for name in names]
        positions = [i + (offset - 1) * height for i in range(len(names))]
        ax.barh(positions, shares, height=height, color=colour, label=f"per {unit}")
    ax.set_yticks(range(len(names)), names, family="monospace")
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, 1)
    ax.set_title("TLSA usage selector matching-type")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def provider_figure(providers: pd.DataFrame, top: int = 10) -> Figure:
    """Share of DANE domains per provider (top N), with the cumulative share."""
    shown = providers.head(top)
    fig, (ax,) = _figure(0.35 * max(len(shown), 3) + 1.2)
    positions = range(len(shown))
    ax.barh(positions, list(shown["share"]), color=_BLUE, label="share of DANE domains")
    ax.plot(
        list(shown["cumulative_share"]),
        list(positions),
        color=_ORANGE,
        marker="o",
        label="cumulative",
    )
    ax.set_yticks(positions, list(shown["provider"]), fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, max(1.0, float(shown["cumulative_share"].max()) if len(shown) else 1.0))
    ax.set_title(f"Top {len(shown)} operators of DANE MX hosts")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def tld_figure(funnel_by_tld: pd.DataFrame, stage: str = "secure_tlsa", top: int = 15) -> Figure:
    """Per TLD, the share of domains that reach ``stage`` of the funnel."""
    shown = funnel_by_tld[funnel_by_tld["stage"] == stage].head(top)
    fig, (ax,) = _figure(0.3 * max(len(shown), 3) + 1.2)
    positions = range(len(shown))
    ax.barh(positions, list(shown["share_of_all"]), color=_BLUE)
    ax.set_yticks(positions, [f".{t}" for t in shown["tld"]], fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(f"Share of domains per TLD at stage {stage!r}")
    return fig


def diff_figure(diff: pd.DataFrame) -> Figure:
    """Domains per change between two scans (unchanged domains left out)."""
    changed = diff[diff["change"] != "unchanged"].groupby("change", sort=False)["domains"].sum()
    changed = changed.sort_values(ascending=False)
    fig, (ax,) = _figure(0.4 * max(len(changed), 3) + 1.2)
    values = [int(v) for v in changed]
    colours = [
        _BLUE if c in ("adopted", "fixed") else _ORANGE if c in ("broke", "dropped") else _GREY
        for c in changed.index
    ]
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(values)), list(changed.index))
    ax.invert_yaxis()
    ax.set_xlim(0, max([*values, 1]) * 1.3)
    ax.set_xlabel("domains")
    ax.set_title("Changes between the two scans")
    _label_bars(ax, values)
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def to_svg(fig: Figure) -> str:
    """The figure as a standalone SVG document."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()
