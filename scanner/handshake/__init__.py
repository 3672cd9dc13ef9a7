"""Handshake stage: SMTP EHLO, STARTTLS (RFC 3207) and certificate chain capture."""
