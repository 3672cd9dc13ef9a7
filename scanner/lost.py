"""What a scan cannot go on without: losing it ends the scan, never a domain.

A domain caught by the loss is not written (``--resume`` does it again), so
a fault of the scanner's own surroundings never becomes a fact about a
domain in the dataset: the resolver that stayed down past the scan's
patience (scanner.resolve.health.ResolverLost), or on a cluster the worker
that owns a mail address (scanner.cluster.route.OwnerLost).
"""

from __future__ import annotations


class ScanLost(Exception):
    """A part of the scan's surroundings is gone; a one-line message."""
