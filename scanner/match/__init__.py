"""Match stage: TLSA records against certificate chains (RFC 6698, 7671, 7672); no I/O.

- :mod:`scanner.match.records`: which records of an RRset are usable, digest agility;
- :mod:`scanner.match.certificates`: parsed X.509, issuer links, signatures, purposes;
- :mod:`scanner.match.identifiers`: the leaf's names against the reference identifiers;
- :mod:`scanner.match.dane`: OpenSSL's DANE algorithm (``match_chain``, ``openssl_verify``);
- :mod:`scanner.match.outcome`: what it reports (``MatchResult``, OpenSSL's verify codes);
- :mod:`scanner.match.der`: DER slicing of the SubjectPublicKeyInfo, PEM reading;
- :mod:`scanner.match.batch`: many chains at once, each certificate handled once;
- :mod:`scanner.match.depths`: the lowest depth at which each record of an RRset matches.

The record type itself, shared with the resolve stage, is ``scanner.tlsa.TlsaRecord``.
"""
