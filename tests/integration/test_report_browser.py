"""report.html in a real browser: Debian's chromium, headless, offline.

The page is rendered twice by chromium: once to a screenshot (the PNG must
exist and show more than a blank page) and once with ``--dump-dom`` (the DOM
after parsing, so what a reader's browser builds): the funnel numbers must be
in the funnel table, and every figure must be an ``<img>`` with its id, an alt
text and an embedded PNG that decodes to a drawn figure.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from analysis import load, metrics, report
from testbed import synth

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Quiet and offline: no first-run UI, no background fetches, no updates, no sync.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
)


class _Dom(HTMLParser):
    """The images, and the text of each table by id, of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, dict[str, str]] = {}
        self.tables: dict[str, list[str]] = {}
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images[values.get("id", "")] = values
        elif tag == "table":
            self._table = values.get("id", "")
            self.tables[self._table] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._table is not None and data.strip():
            self.tables[self._table].append(data.strip())


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("browser")
    synth.write_synthetic(root / "old", 3000, seed=4)
    synth.write_synthetic(root / "new", 3000, seed=4, churn=0.3)
    report.render_report(root / "new", root / "report.html", compare=root / "old")
    return root / "new", root / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    results, page = rendered
    url = page.resolve().as_uri()

    screenshot = tmp_path / "report.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1280,4000", url, profile=tmp_path / "p1")
    assert screenshot.stat().st_size > 50_000
    pixels = mpimg.imread(screenshot)
    assert pixels.shape[:2] == (4000, 1280)
    assert float(np.asarray(pixels).std()) > 0.05  # not a blank page

    # The page has no script, so the DOM after parsing says which images are there
    # and with what; each source must be a PNG that decodes to a drawn figure.
    dom = _Dom()
    dom.feed(chromium("--dump-dom", url, profile=tmp_path / "p2").stdout)
    for figure_id in (*report.FIGURE_IDS, report.DIFF_FIGURE_ID):
        image = dom.images[f"{figure_id}-img"]
        assert image["alt"]
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        figure = mpimg.imread(io.BytesIO(base64.b64decode(image["src"][len(prefix) :])))
        height, width = figure.shape[:2]
        assert height > 200
        assert width > 600
        assert float(np.asarray(figure).std()) > 0.05

    funnel = metrics.funnel(load.load(results).domains)
    cells = dom.tables["funnel-table"]
    for label, count in zip(funnel["label"], funnel["domains"], strict=True):
        assert label in cells
        assert f"{count:,}" in cells
    assert {"diff-table", "triplets-table", "failure-categories"} <= set(dom.tables)
