"""h2's connection with its output kept as a list of buffers: DATA payloads are not copied.

``h2.connection.H2Connection`` serializes every frame it sends and appends the bytes to
one ``bytearray``; ``data_to_send()`` copies that out again. For a DATA frame this is four
copies of the payload on the way to the socket (hyperframe's ``serialize_body`` join, the
header + body concatenation, the join of the frames, the ``bytearray`` append, then
``bytes()`` of it). Profiled on ``h2load -c64 -m10`` of a 64 KiB response (py-spy), that
serialization was the largest single cost of the connection (~20% of the worker's time).

``BufferedH2Connection`` changes only where the frames go: h2's one seam for outgoing
frames, ``_prepare_for_sending``, appends a DATA frame as its 9-byte header and the payload
itself (the bytes h2 was given), every other frame serialized as h2 would. The bytes on
the wire are the same, byte for byte, in the same order (``tests/test_h2_output.py``
compares it with the plain connection). Every state change, flow-control window and
check stays h2's: the frames reaching this method are the ones h2 decided to send.

The seam is a private method of h2 4.x (``pyproject.toml`` pins ``h2>=4.1,<5``); if a
release lacks it, ``connection_class()`` falls back to the plain class.
"""

from __future__ import annotations

import struct
from typing import Any

from h2.connection import H2Connection
from hyperframe.frame import DataFrame

__all__ = ["BufferedH2Connection", "FRAME_HEADER", "JOIN_BELOW", "PlainH2Connection",
           "connection_class"]

FRAME_HEADER = struct.Struct(">HBBBL")  # hyperframe's frame header: 24-bit length, type, flags, id
# Output under this many bytes leaves as one joined buffer (one small copy); above it as a
# list of buffers for the transport's writev (no copy of the payloads).
JOIN_BELOW = 16 * 1024


class BufferedH2Connection(H2Connection):
    """An ``H2Connection`` whose output is a list of buffers (``take_output``)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config=config)
        self._parts: list[Any] = []
        self._parts_size = 0

    def _prepare_for_sending(self, frames: list[Any]) -> None:
        parts = self._parts
        legacy = self._data_to_send  # h2 writes its SETTINGS preamble there directly
        if legacy:
            parts.append(bytes(legacy))
            self._parts_size += len(legacy)
            self._data_to_send = bytearray()
        size = 0
        for frame in frames:
            if frame.__class__ is DataFrame and not frame.pad_length:
                data = frame.data
                length = len(data)
                flags = 1 if "END_STREAM" in frame.flags else 0
                parts.append(FRAME_HEADER.pack(length >> 8 & 0xFFFF, length & 0xFF, 0, flags,
                                          frame.stream_id & 0x7FFFFFFF))
                if length:
                    parts.append(data)
                size += 9 + length
            else:
                serialized = frame.serialize()
                parts.append(serialized)
                size += len(serialized)
        self._parts_size += size

    def take_output(self) -> list[Any]:
        """Everything to send, in order, as buffers (bytes or memoryviews); [] if none.
        Small output comes joined in one buffer."""
        if self._data_to_send:  # (h2's preamble, written there directly)
            self._prepare_for_sending([])
        parts = self._parts
        if not parts:
            return parts
        self._parts = []
        size, self._parts_size = self._parts_size, 0
        if len(parts) > 1 and size < JOIN_BELOW:
            return [b"".join(parts)]
        return parts

    def data_to_send(self, amount: int | None = None) -> bytes:
        """h2's call, kept exact: the output as bytes (at most ``amount``)."""
        data = b"".join(self.take_output())
        if amount is not None and len(data) > amount:
            self._parts = [data[amount:]]
            self._parts_size = len(data) - amount
            data = data[:amount]
        return data

    def take_data(self, stream_id: int, length: int) -> bool:
        """A received DATA frame is h2's to handle (see ``data_frames.py``)."""
        return False

    def send_data_frame(self, stream_id: int, data: Any) -> None:
        """A DATA frame without END_STREAM, through h2 (see ``data_frames.py``)."""
        self.send_data(stream_id, data)

    def try_data_frame(self, stream_id: int, data: bytes) -> bool:
        """Nothing sent: the caller queues ``data`` for h2 (see ``data_frames.py``)."""
        return False

    def clear_outbound_data_buffer(self) -> None:
        super().clear_outbound_data_buffer()
        self._parts = []
        self._parts_size = 0


class PlainH2Connection(H2Connection):
    """h2's own output, behind the same ``take_output`` (the fallback)."""

    def take_output(self) -> list[Any]:
        data = self.data_to_send()
        return [data] if data else []

    take_data = BufferedH2Connection.take_data
    send_data_frame = BufferedH2Connection.send_data_frame
    try_data_frame = BufferedH2Connection.try_data_frame


def connection_class() -> type[H2Connection]:
    """The class the server's HTTP/2 connections use: ``BufferedH2Connection`` where h2
    has the seam it overrides, else ``PlainH2Connection``."""
    seam = getattr(H2Connection, "_prepare_for_sending", None)
    if seam is None or not isinstance(getattr(H2Connection(), "_data_to_send", None),
                                      bytearray):
        return PlainH2Connection
    return BufferedH2Connection
