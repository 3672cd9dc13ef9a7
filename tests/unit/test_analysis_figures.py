"""analysis.figures: each figure shows the rows of the frame it is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import figures, metrics


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def ticks(fig: Figure, index: int = 0) -> list[str]:
    return [t.get_text() for t in fig.axes[index].get_yticklabels()]


def bars(fig: Figure, index: int = 0) -> list[float]:
    return [p.get_width() for p in fig.axes[index].patches]


def funnel_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stage": [s.key for s in metrics.FUNNEL_STAGES],
            "label": [s.label for s in metrics.FUNNEL_STAGES],
            "domains": [1_000_000, 990_000, 40_000, 12_000, 9_000],
            "share_of_all": [1.0, 0.99, 0.04, 0.012, 0.009],
        }
    )


def test_funnel_figure_shows_every_stage_with_its_number() -> None:
    fig = figures.funnel_figure(funnel_frame())
    assert ticks(fig) == [s.label for s in metrics.FUNNEL_STAGES]
    assert bars(fig) == [1_000_000, 990_000, 40_000, 12_000, 9_000]
    assert "1,000,000  (100.00%)" in texts(fig)
    assert "9,000  (0.90%)" in texts(fig)
    assert fig.axes[0].get_xscale() == "log"


def test_verdict_figure_leaves_out_empty_verdicts() -> None:
    domains = pd.DataFrame({"verdict": ["dane_valid", "no_dane", "null_mx"], "domains": [3, 90, 0]})
    hosts = pd.DataFrame({"verdict": ["pass", "fail_dns"], "pairs": [5, 2]})
    fig = figures.verdict_figure(domains, hosts)
    assert ticks(fig, 0) == ["dane_valid", "no_dane"]
    assert ticks(fig, 1) == ["pass", "fail_dns"]
    assert bars(fig, 1) == [5, 2]


def test_triplet_figure_has_one_series_per_unit() -> None:
    frame = pd.DataFrame(
        {
            "triplet": ["3 1 1", "2 1 1", "3 1 1", "2 1 1", "3 1 1", "3 0 1"],
            "unit": ["record", "record", "rrset", "rrset", "domain", "domain"],
            "count": [8, 2, 6, 2, 7, 1],
            "share": [0.8, 0.2, 0.75, 0.25, 0.9, 0.1],
        }
    )
    fig = figures.triplet_figure(frame)
    assert ticks(fig) == ["3 1 1", "2 1 1"]  # the per-record ranking decides
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["per record", "per rrset", "per domain"]
    assert bars(fig) == [0.8, 0.2, 0.75, 0.25, 0.9, 0.0]


def test_provider_figure_keeps_the_top() -> None:
    frame = pd.DataFrame(
        {
            "provider": [f"p{i}.example" for i in range(20)],
            "share": [0.05] * 20,
            "cumulative_share": [0.05 * (i + 1) for i in range(20)],
        }
    )
    fig = figures.provider_figure(frame, top=4)
    assert ticks(fig) == ["p0.example", "p1.example", "p2.example", "p3.example"]
    assert list(fig.axes[0].lines[0].get_xdata()) == [0.05, 0.1, 0.15000000000000002, 0.2]


@pytest.mark.parametrize(
    ("draw", "columns", "expected_ticks", "expected_bars"),
    [
        pytest.param(
            figures.tld_figure,
            {
                "tld": ["nl", "nl", "com", "com"],
                "stage": ["domains", "secure_tlsa", "domains", "secure_tlsa"],
                "share_of_all": [1.0, 0.2, 1.0, 0.01],
            },
            [".nl", ".com"],
            [0.2, 0.01],
            id="tld figure shows one stage",
        ),
        pytest.param(
            figures.diff_figure,
            {
                "change": ["adopted", "broke", "unchanged", "adopted"],
                "old_state": ["none", "valid", "none", "absent"],
                "new_state": ["valid", "failing", "none", "valid"],
                "domains": [4, 7, 1000, 2],
            },
            ["broke", "adopted"],  # unchanged domains left out, adoptions summed
            [7, 6],
            id="diff figure leaves out unchanged domains",
        ),
    ],
)
def test_one_bar_per_kept_row(
    draw: Callable[[pd.DataFrame], Figure],
    columns: dict[str, list[Any]],
    expected_ticks: list[str],
    expected_bars: list[float],
) -> None:
    fig = draw(pd.DataFrame(columns))
    assert ticks(fig) == expected_ticks
    assert bars(fig) == expected_bars


def test_renderings() -> None:
    fig = figures.funnel_figure(funnel_frame())
    assert figures.to_png(fig).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" in figures.to_svg(fig)
