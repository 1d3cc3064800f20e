"""What crosses between a worker and the state server: values and frames.

Values are JSON (``encode_value``): what Redis would hold too, readable by any client, and
what Hornbeam's apps store (numbers, strings, lists, dicts, booleans, None). A value JSON
cannot carry is a ``TypeError`` naming its type, never a silent ``str()``.

Frames are a 4-byte big-endian length and a ``marshal``-ed tuple of plain data (str, bytes,
int, float, None, lists and tuples of them): requests ``(rid, op, *args)``, answers
``(rid, True, result)`` or ``(rid, False, error class name, message)``, and pushed messages
``(0, subscription id, topic, seq, data)``. marshal is the fastest
serializer for this in CPython and both ends are the same interpreter; the socket is the
master's own (a private directory, mode 0700), not a network protocol.
"""

from __future__ import annotations

import json
import marshal
import struct
from typing import Any

__all__ = ["MAX_FRAME", "decode_value", "encode_value", "frame", "HEADER"]

HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 30  # a frame claiming more is a broken peer


def _refuse(value: Any) -> Any:
    raise TypeError(f"shared state and pub/sub carry JSON values: a {type(value).__name__} "
                    "cannot be stored (convert it first)")


_strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_refuse)


def encode_value(value: Any) -> bytes:
    """The bytes a value is stored and sent as (JSON, UTF-8)."""
    try:
        return _strict.encode(value).encode("utf-8")
    except ValueError as exc:  # a circular structure, NaN is allowed by json
        raise TypeError(f"value cannot be stored as JSON: {exc}") from None


def decode_value(data: bytes | None) -> Any:
    return None if data is None else json.loads(data)


def frame(message: tuple[Any, ...]) -> bytes:
    body = marshal.dumps(message)
    return HEADER.pack(len(body)) + body
