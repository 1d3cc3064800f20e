"""HTTP/2 (RFC 9113) behind the stream seam: ``HTTP2Connection`` drives the same ASGI and
WSGI adapters as HTTP/1.1, one ``H2Stream`` per request (see docs/design/http2.md for the
plan this follows and what is still to come)."""

from .connection import HTTP2Connection
from .shared import H2Shared

__all__ = ["H2Shared", "HTTP2Connection"]
