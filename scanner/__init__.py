"""danescan: an asyncio scanner for internet-wide surveys of DANE for SMTP.

RFC 6698 (DANE TLSA), RFC 7671 (DANE operational updates), RFC 7672 (SMTP
security via opportunistic DANE TLS).
"""

__version__ = "0.1.0"
