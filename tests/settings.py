"""The handshake's settings as a scan builds them, for tests that change a few.

scanner.config.ScanConfig is the one place the defaults of PoliteSettings and
SessionSettings are set (they have none of their own for what a scan sets):
tests start from its values and change only what they are about.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scanner.config import ScanConfig
from scanner.handshake.polite import PoliteSettings
from scanner.handshake.session import SessionSettings

EHLO_NAME = "scanner.example.net"
_SCAN = ScanConfig(input="-", output="unused", ehlo_name=EHLO_NAME)


def polite_settings(**change: Any) -> PoliteSettings:
    """A scan's default PoliteSettings with ``change`` applied."""
    return replace(_SCAN.polite_settings, **change)


def session_settings(**change: Any) -> SessionSettings:
    """A scan's default SessionSettings (EHLO as ``EHLO_NAME``) with ``change`` applied."""
    return replace(_SCAN.session_settings, **change)
