"""HTTP/1.0 and HTTP/1.1: every HTTP/1 byte Betula reads or writes.

- ``connection.py``: the asyncio protocol: parsing (llhttp), pipelining, limits, timeouts,
  the graceful stop; the connection is the stream of its current exchange.
- ``response.py``: the stream's response side: status line, framing, chunks, trailers, 1xx.
- ``head.py``: what a request head means (analysed once per distinct field list).
- ``framing.py``: status lines, header blocks, error responses.
- ``shared.py``: what a worker's HTTP/1 connections share (caches, Date/Server lines).
- ``upgrade.py``: a WebSocket on HTTP/1.1: the handshake's 101, refusals and denial,
  then the transport as the WebSocket's byte pipe.
"""

from .connection import HTTP1Connection
from .shared import HTTP1Shared

__all__ = ["HTTP1Connection", "HTTP1Shared"]
