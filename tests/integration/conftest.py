"""A testbed shared by the integration tests of one run, brought up once.

It lives on its own loopback net (127.250.0.0/16) so that it never collides
with a demo testbed (net 10) or with the component tests' own servers;
DANESCAN_TEST_NET picks another, for two test runs side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from testbed import cli
from tests.integration.support import Testbed, own_testbed

TEST_NET = int(os.environ.get("DANESCAN_TEST_NET", "250"))
TEST_DOMAINS = 1500
TEST_SEED = 20261128


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    with own_testbed("testbed", net=TEST_NET, domains=TEST_DOMAINS, seed=TEST_SEED) as bed:
        assert json.loads((bed.directory / cli.STATE_FILE).read_text()) == bed.state
        yield bed
