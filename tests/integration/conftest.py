"""A testbed shared by the integration tests of one run, brought up once.

It lives on its own loopback net (127.250.0.0/16) so that it never collides
with a demo testbed (net 10) or with the component tests' own servers;
DANESCAN_TEST_NET picks another, for two test runs side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from testbed import cli
from tests.integration.support import Testbed

TEST_NET = int(os.environ.get("DANESCAN_TEST_NET", "250"))
TEST_DOMAINS = 1500
TEST_SEED = 20261128


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    # Not under pytest's tmp_path: Postfix runs as its own user and needs every
    # parent folder to be searchable, which pytest's 0700 folders are not.
    directory = Path(tempfile.mkdtemp(prefix="danescan-testbed-"))
    directory.chmod(0o755)
    state = cli.up(
        directory, domains=TEST_DOMAINS, seed=TEST_SEED, net=TEST_NET, out=lambda _line: None
    )
    try:
        assert json.loads((directory / cli.STATE_FILE).read_text()) == state
        truth = pq.read_table(str(state["truth_file"])).to_pylist()
        yield Testbed(directory, state, truth)
    finally:
        cli.down(directory)
        shutil.rmtree(directory, ignore_errors=True)
