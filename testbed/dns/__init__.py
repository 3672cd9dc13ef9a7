"""The DNS half of the testbed: a private, DNSSEC-signed DNS tree on loopback.

From a list of zones (testbed.model) this writes zone files with delegations,
glue and DS records (RFC 1034 section 4.2, RFC 4035 section 2.4: zones), signs
them with ldns-signzone (RFC 4033-4035, NSEC: signing) under one key derived
from the seed (RFC 6605, RFC 4034: keys), and configures NSD to serve them and
a validating Unbound that trusts the private root (conf); build_dns does all
of that, start_dns runs the servers (serve).
"""

from testbed.dns.build import DnsBuild, NsdLayer, build_dns
from testbed.dns.keys import ZoneKey, derive_key
from testbed.dns.serve import probe_dns, start_dns

__all__ = [
    "DnsBuild",
    "NsdLayer",
    "ZoneKey",
    "build_dns",
    "derive_key",
    "probe_dns",
    "start_dns",
]
