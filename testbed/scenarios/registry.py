"""The register of scenarios: each one named once, where it is defined.

A scenario lays out one mail domain with a Builder and names its MX hosts;
what a scanner that follows RFC 7672 must conclude about them (the
DomainVerdict, and the DaneVerdict of each host) is declared where the
scenario is registered, so a reader sees the layout and its truth side by
side, and testbed.synth reads the truth without laying anything out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from scanner.status import DaneVerdict, DomainVerdict
from testbed.builder import UNSTATED, BesideTruth, Builder, DomainTruth, HostTruth


class Laid(NamedTuple):
    """What a layout made: the domain (absolute) and its MX hosts in preference order."""

    domain: str
    hosts: tuple[str, ...] = ()


LayOut = Callable[[Builder], Laid]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    weight: float  # share of all domains
    lay_out: LayOut
    description: str
    verdict: DomainVerdict
    # One verdict for every MX host, or one per host in the order laid out.
    host_verdicts: DaneVerdict | tuple[DaneVerdict, ...] = ()
    minimum: int = 1  # at least this many, whatever N
    bulk: bool = False  # takes its share of what the other scenarios leave
    # Serves on ::1, which only one testbed on a machine can hold (port 25).
    ipv6: bool = False
    # Only on the internet profile (a fault the loopback profile does not model).
    internet: bool = False
    # The verdict of a sender that also uses DANE under an insecure MX RRset
    # (RFC 7672 s2.2.1); None: the same as ``verdict``.
    relaxed: DomainVerdict | None = None
    # Beside DANE; the verdict in 30 days is this scenario's ``verdict``
    # unless ``beside`` says otherwise (nothing expires that soon by default).
    beside: BesideTruth = UNSTATED

    def host_verdict(self, index: int) -> DaneVerdict:
        """The verdict of the MX host at ``index`` (in the order laid out)."""
        if isinstance(self.host_verdicts, DaneVerdict):
            return self.host_verdicts
        return self.host_verdicts[index]

    def build(self, b: Builder) -> DomainTruth:
        laid = self.lay_out(b)
        if not isinstance(self.host_verdicts, DaneVerdict) and (
            len(self.host_verdicts) != len(laid.hosts)
        ):
            raise ValueError(f"{self.name}: {len(laid.hosts)} hosts laid out, verdicts for others")
        hosts = tuple(HostTruth(h, self.host_verdict(i)) for i, h in enumerate(laid.hosts))
        relaxed = self.relaxed if self.relaxed is not None else self.verdict
        beside = self.beside
        if beside.verdict_in_30_days is None:
            beside = replace(beside, verdict_in_30_days=self.verdict)
        return DomainTruth(laid.domain, self.name, self.verdict, hosts, relaxed, beside)


_REGISTERED: dict[str, Scenario] = {}


def scenario(
    weight: float,
    description: str,
    verdict: DomainVerdict,
    host_verdicts: DaneVerdict | tuple[DaneVerdict, ...] = (),
    *,
    name: str | None = None,
    minimum: int = 1,
    bulk: bool = False,
    ipv6: bool = False,
    internet: bool = False,
    relaxed: DomainVerdict | None = None,
    beside: BesideTruth | None = None,
) -> Callable[[LayOut], LayOut]:
    """Register the decorated layout under ``name``, by default its function's
    name; a layout made by a factory is registered as ``scenario(...)(layout)``.
    The catalogue keeps the order of registration."""

    def register(lay_out: LayOut) -> LayOut:
        key = name if name is not None else lay_out.__name__
        if key in _REGISTERED:
            raise ValueError(f"scenario {key} registered twice")
        _REGISTERED[key] = Scenario(
            name=key,
            weight=weight,
            lay_out=lay_out,
            description=description,
            verdict=verdict,
            host_verdicts=host_verdicts,
            minimum=minimum,
            bulk=bulk,
            ipv6=ipv6,
            internet=internet,
            relaxed=relaxed,
            beside=beside if beside is not None else UNSTATED,
        )
        return lay_out

    return register


def registered() -> tuple[Scenario, ...]:
    return tuple(_REGISTERED.values())
