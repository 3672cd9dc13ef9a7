"""The MTA-STS policy fetch of one domain (RFC 8461 section 3.3), as the
pipeline and ``scan check`` run it beside the handshakes: the addresses of
``mta-sts.<domain>`` from the scan's own resolver, the fetch through the
scan's Fetcher (scanner.mtasts.fetch), the policy parsed (section 3.2) when
it came whole, all kept on the domain's Observation.
"""

from __future__ import annotations

import dataclasses

from scanner.assemble import Observation
from scanner.mtasts.fetch import Fetcher
from scanner.mtasts.policy import parse_policy
from scanner.mtasts.response import FetchStatus
from scanner.resolve.discover import Discoverer


async def fetch_policy(fetcher: Fetcher, discoverer: Discoverer, work: Observation) -> None:
    """The MTA-STS policy of a domain with a valid record (RFC 8461 s3.3),
    fetched from the addresses of ``mta-sts.<domain>`` and parsed (s3.2)
    when it came whole; kept on ``work``."""
    assert work.policies is not None
    found = await discoverer.policy_host_addresses(work.domain)
    fetched = await fetcher.fetch(work.domain, found.addresses.addresses)
    if found.transient and fetched.status is FetchStatus.NO_ADDRESS:
        # The lookup of mta-sts.<domain> failed, not the domain: no fact.
        fetched = dataclasses.replace(fetched, transient=True)
    parsed = None
    if fetched.status is FetchStatus.OK and fetched.body is not None:
        parsed = parse_policy(fetched.body.encode())
    sts = dataclasses.replace(work.policies.sts, fetch=fetched, policy=parsed)
    work.policies = dataclasses.replace(work.policies, sts=sts)
