"""MTA-STS (RFC 8461): the ``_mta-sts`` TXT record, the policy served over
HTTPS, and what the policy says of a domain's MX hosts. The record and the
policy are parsed by pure modules; the HTTPS fetch is a thin asyncio driver.

- ``response`` (pure): what an answer to a policy fetch means (section 3.3);
  ``fetch``: the fetch itself, as polite as the scan's SMTP handshakes.
"""
