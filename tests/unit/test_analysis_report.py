"""analysis.report: one self-contained page with every table and figure."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analysis import load, metrics, report
from scanner.output.manifest import Counts, Manifest, ScanStatus
from testbed import synth


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    synth.write_synthetic(root / "old", 3000, seed=5)
    synth.write_synthetic(root / "new", 3000, seed=5, churn=0.3)
    return root / "old", root / "new"


@pytest.fixture(scope="module")
def page(scans: tuple[Path, Path]) -> str:
    con = duckdb.connect()
    old = load.load_domains(scans[0], name="old", connection=con)
    new = load.load(scans[1], name="new", connection=con)
    return report.build_html(new, old)


def test_every_figure_is_embedded(page: str) -> None:
    for figure_id in (*report.FIGURE_IDS, report.DIFF_FIGURE_ID):
        match = re.search(
            rf'<figure id="{figure_id}"><img id="{figure_id}-img" alt="([^"]+)" '
            r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
            page,
        )
        assert match, figure_id
        assert len(match.group(2)) > 5000


def test_nothing_is_loaded_from_elsewhere(page: str) -> None:
    assert not re.search(r"(?:src|href)=\"(?!data:)", page)
    assert "url(" not in page
    assert "<script" not in page


def test_funnel_numbers_are_printed_exactly(page: str, scans: tuple[Path, Path]) -> None:
    funnel = metrics.funnel(load.load(scans[1]).domains)
    table = page[page.index('<table id="funnel-table">') :]
    table = table[: table.index("</table>")]
    for count in funnel["domains"]:
        assert f'<td class="n">{count:,}</td>' in table
    assert "100.00%" in table


@pytest.mark.slow
def test_without_an_earlier_scan_there_is_no_difference(scans: tuple[Path, Path]) -> None:
    page = report.build_html(load.load(scans[1]))
    assert report.DIFF_FIGURE_ID not in page
    assert 'id="diff"' not in page
    assert all(f'id="{f}"' in page for f in report.FIGURE_IDS)


def test_table_formats_counts_shares_and_text() -> None:
    frame = pd.DataFrame(
        {
            "name": ["<b>x</b>", None],
            "domains": [1234567, 0],
            "share": [0.123456, 1.0],
            "flag": [True, False],
        }
    )
    html = report.html_table(frame, "t", "Caption & more").html
    assert '<table id="t"><caption>Caption &amp; more</caption>' in html
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in html
    assert '<td class="n">1,234,567</td>' in html
    assert '<td class="n">12.35%</td>' in html
    assert '<td class="n">100.00%</td>' in html
    assert "<td>yes</td>" in html
    assert "<td></td>" in html


@pytest.mark.slow
def test_main_writes_the_file(scans: tuple[Path, Path], tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    assert report.main([str(scans[1]), "-o", str(output), "--compare", str(scans[0])]) == 0
    text = output.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert report.DIFF_FIGURE_ID in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_main_reports_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_records_are_checked_against_chains_once_per_report(
    scans: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = metrics.check_records

    def counted(scan: duckdb.DuckDBPyRelation) -> metrics.RecordChecks:
        calls.append(scan)
        return real(scan)

    monkeypatch.setattr(metrics, "check_records", counted)
    page = report.build_html(load.load(scans[1]))
    assert 'id="rollover"' in page
    assert 'id="anchors"' in page
    assert len(calls) == 1


def test_the_header_shows_what_the_manifest_says() -> None:
    when = dt.datetime(2026, 11, 28, 12, 0, 7, 123456, tzinfo=dt.UTC)
    manifest = Manifest(
        scanner_version="1.2.3",
        status=ScanStatus.FAILED,
        started_at=when,
        finished_at=None,
        failure="disk full: No space left on device",
        counts=Counts(transient=4),
    )
    assert report.provenance(manifest) == [
        ("scanner", "danescan"),
        ("scanner version", "1.2.3"),
        ("started", "2026-11-28 12:00:07+00:00"),
        ("finished", "unknown"),
        ("status", "failed: disk full: No space left on device"),
        ("rows left transient", "4"),
    ]
