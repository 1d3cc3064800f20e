"""permessage-deflate (RFC 7692) for the WebSocket fast path (``protocols/websocket.py``).

websockets negotiates the extension and its ``PerMessageDeflate`` holds the outcome (window
bits, context takeover each way) and the zlib streams. Frames that go through websockets
are compressed and decompressed by it; the fast path does the same for whole unfragmented
messages, here, on the same zlib objects, so the LZ77 context stays one stream whichever way
a message went. What it saves is websockets' frame parser and two ``Frame`` objects a
message (profiled: with compression on, that was a third of the server's time per echoed
1 KiB message; the compression itself is zlib's either way).

The rules are websockets' (``PerMessageDeflate.decode``/``encode``): a message's data is
inflated with the 4-byte empty block appended, never past the message size limit (a zip
bomb is ``PayloadTooBig``), a zlib error is a ``ProtocolError``; a side without context
takeover gets a fresh zlib stream per message.
"""

from __future__ import annotations

import zlib
from typing import Any

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import PerMessageDeflate

__all__ = ["Deflate"]

_TAIL = b"\x00\x00\xff\xff"  # the empty uncompressed block each message's data ends without
_SYNC = zlib.Z_SYNC_FLUSH


class Deflate:
    """The negotiated permessage-deflate of one connection."""

    __slots__ = ("ext",)

    def __init__(self, ext: PerMessageDeflate) -> None:
        self.ext = ext

    @classmethod
    def of(cls, extensions: list[Any]) -> Deflate | None:
        """The connection's permessage-deflate, when it is its only extension."""
        if len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate):
            return cls(extensions[0])
        return None

    def inflate(self, data: bytes, max_size: int) -> bytes:
        """The message a compressed, unfragmented frame's (unmasked) ``data`` carries."""
        ext = self.ext
        if ext.remote_no_context_takeover:
            decoder = zlib.decompressobj(wbits=-ext.remote_max_window_bits)
        else:
            decoder = ext.decoder
        try:
            message = decoder.decompress(data + _TAIL, max_size)
        except zlib.error as exc:
            raise ProtocolError("decompression failed") from exc
        if decoder.unconsumed_tail or (len(message) == max_size and
                                       decoder.decompress(b"", 1)):  # (output held back)
            raise PayloadTooBig(None, max_size)
        return message

    def deflate(self, message: bytes) -> bytes:
        """The compressed data of a message sent in one frame."""
        ext = self.ext
        if ext.local_no_context_takeover:
            encoder = zlib.compressobj(wbits=-ext.local_max_window_bits,
                                       **ext.compress_settings)
        else:
            encoder = ext.encoder
        data = encoder.compress(message) + encoder.flush(_SYNC)
        return data[:-4]  # (a sync flush ends with the empty block: RFC 7692 §7.2.1)
