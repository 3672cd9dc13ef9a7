"""The Discoverer's lookups beside DANE's: the ``_mta-sts`` (RFC 8461 section
3.1) and ``_smtp._tls`` (RFC 8460 section 3) TXT RRsets of each domain, the
policy host's addresses (RFC 8461 section 3.3), and the TLSA RRsets of hosts
named by an insecure MX RRset (RFC 7672 section 2.2.1)."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import pytest

from scanner.resolve.answer import DnsAnswer
from scanner.resolve.discover import Discoverer, DomainResolution, HostAddresses
from scanner.resolve.message import Mx, RdType
from scanner.resolve.policy import TlsaState, TxtLookup, dns_verdict, tlsa_name
from scanner.status import DaneVerdict, DnsOutcome, DnssecStatus
from tests.unit.fake_resolver import Replies, client_for, response
from tests.unit.test_resolve_discover import (
    RECORD,
    SERVFAIL_BOGUS,
    TableAsker,
    answer,
    discover,
    host_answers,
    timeout,
    tlsa,
)

A, AAAA, MX, TLSA, TXT = RdType.A, RdType.AAAA, RdType.MX, RdType.TLSA, RdType.TXT
STS, RPT = "_mta-sts.example.", "_smtp._tls.example."
STS_RECORD = (b"v=STSv1; id=20240101",)
RPT_RECORD = (b"v=TLSRPTv1; ", b"rua=mailto:tls@example.com")  # two strings, one record


def secure_domain(*policy: DnsAnswer) -> TableAsker:
    """example. with one secure MX host publishing TLSA, and ``policy``."""
    return TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example.", tlsa=tlsa("mx.example.", RECORD)),
        *policy,
    )


def test_both_records_present_asked_with_the_mx() -> None:
    asker = secure_domain(answer(STS, TXT, STS_RECORD), answer(RPT, TXT, RPT_RECORD, ad=False))
    (resolution,) = discover(asker, "example.", policies=True)
    assert resolution.mta_sts_txt == TxtLookup(
        STS, DnsOutcome.ANSWER, DnssecStatus.SECURE, (STS_RECORD,)
    )
    assert resolution.tlsrpt_txt == TxtLookup(
        RPT, DnsOutcome.ANSWER, DnssecStatus.INSECURE, (RPT_RECORD,)
    )
    assert resolution.mta_sts_txt.answered
    assert not resolution.transient
    # Sent before the MX answer is awaited: no round trip of their own.
    assert asker.order[:3] == [("example.", MX), (STS, TXT), (RPT, TXT)]
    assert [h.tlsa.state for h in resolution.hosts] == [TlsaState.RECORDS]


@pytest.mark.parametrize(
    ("sts", "outcome", "dnssec", "answered", "transient", "error"),
    [
        (answer(STS, TXT, outcome=DnsOutcome.NXDOMAIN), DnsOutcome.NXDOMAIN,
         DnssecStatus.SECURE, True, False, ""),
        (answer(STS, TXT, ad=False), DnsOutcome.NODATA, DnssecStatus.INSECURE, True, False, ""),
        (answer(STS, TXT, outcome=DnsOutcome.SERVFAIL, ad=False), DnsOutcome.SERVFAIL,
         DnssecStatus.INDETERMINATE, False, True, "servfail"),
        (answer(STS, TXT, outcome=DnsOutcome.SERVFAIL, ad=False, ede=SERVFAIL_BOGUS),
         DnsOutcome.SERVFAIL, DnssecStatus.BOGUS, False, False, "servfail: EDE 6"),
        (timeout(STS, TXT), DnsOutcome.TIMEOUT, DnssecStatus.INDETERMINATE, False, True,
         "timeout"),
    ],
    ids=["nxdomain", "nodata", "servfail", "bogus", "timeout"],
)  # fmt: skip
def test_absent_and_failed_lookups(
    sts: DnsAnswer,
    outcome: DnsOutcome,
    dnssec: DnssecStatus,
    answered: bool,
    transient: bool,
    error: str,
) -> None:
    """An empty RRset is a fact (``answered``); a failure keeps no records,
    and a transient one makes the domain's resolution transient like any
    other transient answer of the domain (the pipeline's --retries bound it)."""
    asker = secure_domain(sts, answer(RPT, TXT, outcome=DnsOutcome.NXDOMAIN))
    (resolution,) = discover(asker, "example.", policies=True)
    found = resolution.mta_sts_txt
    assert found is not None
    assert (found.outcome, found.dnssec, found.records) == (outcome, dnssec, ())
    assert (found.answered, found.transient, found.error) == (answered, transient, error)
    assert resolution.transient is transient
    assert resolution.tlsrpt_txt is not None
    assert resolution.tlsrpt_txt.answered


def test_records_at_the_end_of_a_cname_chain() -> None:
    """RFC 8461 section 3.1 and RFC 8460 section 3 say nothing against
    aliases: the records are those the resolver returned for the chain's end."""
    asker = secure_domain(
        answer(STS, TXT, STS_RECORD, (b"unrelated",), cnames=("_mta-sts.provider.",)),
        answer(RPT, TXT, outcome=DnsOutcome.NXDOMAIN, cnames=("_smtp._tls.provider.",)),
    )
    (resolution,) = discover(asker, "example.", policies=True)
    assert resolution.mta_sts_txt is not None
    assert resolution.mta_sts_txt.records == (STS_RECORD, (b"unrelated",))
    assert resolution.tlsrpt_txt is not None
    assert resolution.tlsrpt_txt.outcome is DnsOutcome.NXDOMAIN


def test_off_asks_no_txt_and_leaves_the_fields_none() -> None:
    asker = secure_domain()  # a TXT query would fail the test
    (resolution,) = discover(asker, "example.", policies=False)
    assert (resolution.mta_sts_txt, resolution.tlsrpt_txt) == (None, None)
    assert all(rdtype != TXT for _, rdtype in asker.order)


@pytest.mark.parametrize(
    "mx",
    [answer("example.", MX, outcome=DnsOutcome.NXDOMAIN), answer("example.", MX, Mx(0, "."))],
    ids=["nxdomain", "null_mx"],
)
def test_looked_up_whatever_the_mx(mx: DnsAnswer) -> None:
    """The records are data of the domain, kept even where no mail goes."""
    asker = TableAsker(mx, answer(STS, TXT, STS_RECORD), answer(RPT, TXT, RPT_RECORD))
    (resolution,) = discover(asker, "example.", policies=True)
    assert resolution.hosts == ()
    assert resolution.mta_sts_txt is not None
    assert resolution.mta_sts_txt.records == (STS_RECORD,)


def test_a_transient_record_is_asked_again_on_the_retry() -> None:
    asker = secure_domain(timeout(STS, TXT), answer(RPT, TXT, RPT_RECORD))

    async def run() -> tuple[DomainResolution, DomainResolution]:
        discoverer = Discoverer(asker)
        first = await discoverer.domain("example.")
        asker.set(answer(STS, TXT, STS_RECORD))
        return first, await discoverer.domain("example.", refresh=True)

    first, again = asyncio.run(run())
    assert (first.transient, again.transient) == (True, False)
    assert again.mta_sts_txt is not None
    assert again.mta_sts_txt.records == (STS_RECORD,)
    assert asker.asked[(STS, TXT)] == 2
    assert asker.asked[(tlsa_name("mx.example."), TLSA)] == 1  # the settled host: cached


class PendingTxt(TableAsker):
    """Answers from the table, but TXT never: those futures are kept."""

    def __init__(self, *answers: DnsAnswer) -> None:
        super().__init__(*answers)
        self.pending: list[asyncio.Future[DnsAnswer]] = []

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        if rdtype != TXT:
            return super().ask(name, rdtype)
        future: asyncio.Future[DnsAnswer] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future


def test_cancelling_the_domain_abandons_its_txt_queries() -> None:
    asker = PendingTxt(answer("example.", MX, outcome=DnsOutcome.NXDOMAIN))

    async def run() -> None:
        task = asyncio.create_task(Discoverer(asker).domain("example."))
        for _ in range(5):  # the MX answer arrives, the TXT answers do not
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(asker.pending) == 2
    assert all(future.cancelled() for future in asker.pending)


# --- the policy host --------------------------------------------------------------------


def test_policy_host_addresses_asks_a_and_aaaa_only() -> None:
    host = "mta-sts.example."
    asker = TableAsker(answer(host, A, "192.0.2.7", ad=False), answer(host, AAAA, ad=False))

    async def run() -> tuple[HostAddresses, int]:
        discoverer = Discoverer(asker)
        found = await discoverer.policy_host_addresses("Example")
        return found, len(discoverer.host_cache)

    found, cached = asyncio.run(run())
    assert (found.host, found.addresses.addresses) == (host, ("192.0.2.7",))
    assert (found.addresses.dnssec, found.transient) == (DnssecStatus.INSECURE, False)
    assert sorted(asker.order) == [(host, A), (host, AAAA)]  # no TLSA, no TXT
    assert cached == 0  # the MX hosts' cache is not the place for it


def test_policy_host_addresses_transient() -> None:
    host = "mta-sts.example."
    asker = TableAsker(timeout(host, A), answer(host, AAAA, outcome=DnsOutcome.NXDOMAIN))
    found = asyncio.run(Discoverer(asker).policy_host_addresses("example."))
    assert found.addresses.addresses == ()
    assert found.transient
    assert "A: timeout" in found.addresses.error


# --- insecure MX, secure provider TLSA ----------------------------------------------------


def test_hosts_of_an_insecure_mx_have_their_tlsa_looked_up_once() -> None:
    """RFC 7672 section 2.2.1: a sender may use DANE for hosts named by an
    insecure MX RRset. Their TLSA RRset is looked up (secure addresses) and
    cached per host, shared with domains whose MX RRset is secure; the strict
    verdict sets it aside, the relaxed one (MX security not required) uses it."""
    asker = TableAsker(
        answer("one.example.", MX, Mx(10, "mx.provider."), ad=False),
        answer("two.example.", MX, Mx(10, "mx.provider."), ad=False),
        answer("three.example.", MX, Mx(10, "mx.provider.")),  # secure: today's path
        *host_answers("mx.provider.", tlsa=tlsa("mx.provider.", RECORD)),
    )
    one, two, three = discover(asker, "one.example.", "two.example.", "three.example.")
    assert one.hosts == two.hosts == three.hosts
    (host,) = one.hosts
    assert (host.tlsa.state, host.tlsa.records) == (TlsaState.RECORDS, (RECORD,))
    assert asker.asked[(tlsa_name("mx.provider."), TLSA)] == 1
    assert dns_verdict(one.mx.dane_applies, host.addresses, host.tlsa) is (
        DaneVerdict.NO_DANE_INSECURE
    )
    assert dns_verdict(True, host.addresses, host.tlsa) is None  # the handshake decides
    assert dns_verdict(three.mx.dane_applies, host.addresses, host.tlsa) is None


def test_no_tlsa_for_an_insecure_mx_host_with_insecure_addresses() -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example."), ad=False),
        *host_answers("mx.example.", ad=False),
    )
    (resolution,) = discover(asker, "example.")
    assert [h.tlsa.state for h in resolution.hosts] == [TlsaState.NOT_LOOKED_UP]
    assert all(rdtype != TLSA for _, rdtype in asker.order)


# --- through the DNS client and its codec -------------------------------------------------


def wire_answers(query: dns.message.Message, _: int) -> Replies:
    """A resolver answering example.'s MX and policy records in wire form."""
    question = query.question[0]
    name, rdtype = question.name.to_text(), question.rdtype
    if rdtype == MX:
        reply = response(query, "example. 300 MX 0 .", flags=dns.flags.AD)
    elif name == STS:
        reply = response(
            query,
            f"{STS} 300 CNAME _mta-sts.provider.",
            '_mta-sts.provider. 300 TXT "v=STSv1; " "id=7"',
            '_mta-sts.provider. 300 TXT "other"',
        )
    else:
        reply = response(query, rcode=3, flags=dns.flags.AD)  # NXDOMAIN
    return [(reply, 0.0)]


def test_through_the_client_and_the_codec() -> None:
    async def run() -> DomainResolution:
        async with client_for(wire_answers) as (client, _):
            return await Discoverer(client).domain("example.")

    resolution = asyncio.run(run())
    assert resolution.mta_sts_txt is not None
    assert resolution.mta_sts_txt.records == ((b"v=STSv1; ", b"id=7"), (b"other",))
    assert resolution.mta_sts_txt.dnssec is DnssecStatus.INSECURE
    assert resolution.tlsrpt_txt is not None
    assert (resolution.tlsrpt_txt.outcome, resolution.tlsrpt_txt.dnssec) == (
        DnsOutcome.NXDOMAIN,
        DnssecStatus.SECURE,
    )
