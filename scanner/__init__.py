"""danescan: an asyncio scanner for internet-wide surveys of DANE for SMTP.

RFC 6698 (DANE TLSA), RFC 7671 (DANE operational updates), RFC 7672 (SMTP
security via opportunistic DANE TLS).
"""

from scanner import native as _native

__version__ = "0.1.0"

# Before any compiled module can load: a build older than its sources is refused.
_native.guard()
