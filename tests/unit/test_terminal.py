"""scanner.terminal: remote text escaped for the terminal, the rest untouched."""

from __future__ import annotations

import pytest

from scanner.terminal import printable

ESC, BEL, ST = "\x1b", "\x07", "\x1b\\"


@pytest.mark.parametrize(
    ("received", "shown"),
    [
        # CSI: colours and cursor movement.
        (f"220 {ESC}[31mred{ESC}[0m", "220 \\x1b[31mred\\x1b[0m"),
        (f"{ESC}[2J{ESC}[H", "\\x1b[2J\\x1b[H"),
        # OSC 8 hyperlink and OSC 52 clipboard, ended by BEL or by ST.
        (
            f"{ESC}]8;;http://evil.test{BEL}click{ESC}]8;;{BEL}",
            "\\x1b]8;;http://evil.test\\x07click\\x1b]8;;\\x07",
        ),
        (f"{ESC}]52;c;cm0gLXJmIH4K{ST}", "\\x1b]52;c;cm0gLXJmIH4K\\x1b\\"),
        (f"{ESC}]0;title{BEL}", "\\x1b]0;title\\x07"),
        # C1 controls: the 8-bit CSI and OSC.
        ("\x9b31m", "\\x9b31m"),
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),
        # NUL, DEL, CR, LF, tab, backspace.
        ("a\x00b", "a\\x00b"),
        ("a\x7fb", "a\\x7fb"),
        ("ok\rFAIL", "ok\\rFAIL"),
        ("one\ntwo\tthree", "one\\ntwo\\tthree"),
        ("pass\x08\x08\x08\x08fail", "pass\\x08\\x08\\x08\\x08fail"),
        # Bidi overrides and isolates, zero-width and separator characters.
        ("mx.\u202eelpmaxe.test", "mx.\\u202eelpmaxe.test"),
        ("\u2066a\u2069", "\\u2066a\\u2069"),
        ("a\u200bb\ufeff", "a\\u200bb\\ufeff"),
        ("a\u2028b\u2029", "a\\u2028b\\u2029"),
        # Bytes that were not UTF-8 (surrogateescape): printing one would raise.
        (b"\xff\xfe".decode("utf-8", "surrogateescape"), "\\udcff\\udcfe"),
    ],
)
def test_controls_are_escaped(received: str, shown: str) -> None:
    assert printable(received) == shown
    assert printable(received).isprintable()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "220 mx.example.org ESMTP Postfix (Debian/GNU)",
        "connect failed: OSError: [Errno 113] No route to host",
        "Grüße aus Köln, ñandú, Ελληνικά, 例え.テスト, עברית, العربية",
        "\u00a0non-breaking space and emoji \U0001f600",
        "a literal backslash-x1b: \\x1b",
    ],
)
def test_printable_text_is_untouched(text: str) -> None:
    assert printable(text) == text


# -- where remote text reaches the terminal ------------------------------------------

BANNER = f"421 {ESC}]52;c;cm0gLXJm{BEL}{ESC}[2J\x9b31m mx.\u202eevil"


def test_check_explanation_is_escaped_and_the_result_kept() -> None:
    import datetime as dt
    import io

    from scanner.check import print_explanation
    from scanner.results import DomainResult

    result = DomainResult(
        "example.test", 1, None, f"banner_error: {BANNER}", None, None, (),
        dt.datetime.now(dt.UTC), 0.0,
    )  # fmt: skip
    out = io.StringIO()
    print_explanation(result, out)
    assert ESC not in out.getvalue()
    assert "\x9b" not in out.getvalue()
    assert "\\x1b]52;c;cm0gLXJm\\x07\\x1b[2J\\x9b31m mx.\\u202eevil" in out.getvalue()
    assert result.error == f"banner_error: {BANNER}"  # the dataset's copy is as received


def test_one_line_messages_are_escaped() -> None:
    from scanner.run import ScanError, failure_reason

    reason = failure_reason(ScanError(f"resolver said {BANNER}"))
    assert reason is not None
    assert reason.isprintable()
    assert "\\x1b[2J" in reason


def test_progress_line_and_table_are_escaped() -> None:
    import io
    from collections import Counter

    from rich.console import Console

    from scanner.progress import Counters, Gauges, Snapshot, line, table

    counts = Counters(verdicts=Counter({f"odd{ESC}[31m[bold]": 1}))
    snap = Snapshot(counts, gauges=Gauges(limit=BANNER))
    assert ESC not in line(snap)
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(table(snap))
    assert ESC not in out.getvalue()
    assert "[bold]" in out.getvalue()
