"""Resolve stage: DNSSEC-aware MX, address and TLSA discovery (RFC 7672 section 2)."""
