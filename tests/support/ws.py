"""Raw WebSocket frames (RFC 6455), as a client sends them."""

from __future__ import annotations

import os
import struct
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Opcodes and RSV bits (RFC 6455 §5.2).
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bool = True) -> bytes:
    """One client frame: masked unless told otherwise, any opcode / FIN / RSV bits."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _mask(payload, key)


def close_payload(code: int | None = None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def deflate(data: bytes) -> bytes:
    """A whole message compressed as permessage-deflate sends it (fresh context)."""
    comp = zlib.compressobj(wbits=-15)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(DEFLATE_TAIL)
    return out[:-4]
