"""MTA-STS (RFC 8461): the ``_mta-sts`` TXT record, the policy served over
HTTPS, and what the policy says of a domain's MX hosts. The record and the
policy are parsed by pure modules; the HTTPS fetch is a thin asyncio driver.
"""
