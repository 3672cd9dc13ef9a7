"""The scenario catalogue of the simulated internet, and the truth of each entry.

Each scenario lays out one mail domain with a Builder; its registration
(testbed.scenarios.registry) names it once and declares what a scanner that
follows RFC 7672 must conclude: the DomainVerdict and, per MX host, the
DaneVerdict. The rules applied (DESIGN.md, "RFC 7672 rules"):

- section 2.2.1: DANE applies only when the MX RRset is secure; an insecure MX
  RRset makes every host ``no_dane_insecure``; a bogus one makes the domain
  ``dnssec_bogus``; ``0 .`` is a null MX (RFC 7505); no MX means the domain is
  its own MX host (implicit MX, RFC 5321 section 5.1).
- section 2.2.2: a host's address records must be secure before its TLSA RRset
  is used; for a CNAME the expanded name is tried first, then the original.
- section 2.2.3: a SERVFAIL or bogus TLSA lookup under a secure host is a DANE
  failure (``fail_dns``); a secure denial is ``no_dane_absent``.
- section 3.1: DANE-EE(3) matches the leaf with no name or expiry check;
  DANE-TA(2) needs a valid chain to the anchor, a matching name and nothing
  expired; usages 0 and 1 are unusable; one matching record suffices; RFC 7671
  section 9: per usage and selector only the strongest digest present is used.

Weights resemble the real internet: most domains unsigned, a few per cent
signed, about one per cent with TLSA, with DANE concentrated on a few
providers whose MX hosts serve many domains. Every non-bulk scenario appears
at least ``minimum`` times, so a small testbed still covers the catalogue.

The catalogue's order is part of what a seed means (a plan draws from it in
order): the groups' order below, and within a group the order it registers in.
"""

from __future__ import annotations

import importlib

from testbed.scenarios.registry import Laid, Scenario, registered

__all__ = ["BY_NAME", "CATALOGUE", "Laid", "Scenario"]

for _group in ("unsigned", "signed", "dane", "internet", "postfix", "beside", "mtasts"):
    importlib.import_module(f"{__name__}.{_group}")

CATALOGUE: tuple[Scenario, ...] = registered()
BY_NAME = {s.name: s for s in CATALOGUE}
