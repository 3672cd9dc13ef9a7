"""Synthetic scan datasets (fixtures): schema-conformant, of any size, with
known counts, whose kinds of domain are the scenarios of the testbed's
catalogue (testbed.scenarios) and whose verdicts are theirs (RFC 7672).

testbed.synth.rows holds the template rows and their certificates,
testbed.synth.variants what a scan observes of each scenario, and
testbed.synth.write the generator (``python -m testbed.synth DIR N``).
"""

from __future__ import annotations

from testbed.synth.variants import Variant
from testbed.synth.write import SynthSummary, write_synthetic

__all__ = ["SynthSummary", "Variant", "write_synthetic"]
