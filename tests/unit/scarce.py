"""A machine out of descriptors, for the tests of whoever opens TCP
connections (the handshake's session, the DNS client's TCP exchange):
scanner.fdlimit says EMFILE/ENFILE on connect is this machine's, not the
remote party's, and the connection is tried again."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest


def scarce_connections(monkeypatch: pytest.MonkeyPatch, code: int, times: int = 3) -> list[OSError]:
    """Make ``asyncio.open_connection`` fail with ``code`` ``times`` times,
    then connect; the returned list empties as the failures are raised."""
    real = asyncio.open_connection
    failures = [OSError(code, os.strerror(code))] * times

    async def scarce(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "open_connection", scarce)
    return failures
