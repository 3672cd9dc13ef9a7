"""scanner.names: the one place a name changes form."""

from __future__ import annotations

import pytest

from scanner import names


@pytest.mark.parametrize(
    ("given", "absolute", "relative", "key"),
    [
        ("Mail.Example.ORG", "mail.example.org.", "Mail.Example.ORG", "mail.example.org"),
        ("mail.example.org.", "mail.example.org.", "mail.example.org", "mail.example.org"),
        (".", ".", "", ""),
        ("", ".", "", ""),
    ],
)
def test_forms(given: str, absolute: str, relative: str, key: str) -> None:
    assert names.absolute(given) == absolute
    assert names.relative(given) == relative
    assert names.key(given) == key


def test_forms_round_trip() -> None:
    assert names.absolute(names.relative("a.example.")) == "a.example."
