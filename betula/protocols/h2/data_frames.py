"""DATA frames on open streams without h2's per-frame machinery, with h2's state kept exact.

h2 handles every frame it receives by building a hyperframe ``Frame`` (flags as a set of
strings, a ``repr`` for a trace log), running both state machines and returning events;
every frame it sends goes the same way back. For a DATA frame on an open stream none of
that changes any state but the flow-control windows. Profiled on a compressed WebSocket
echo over HTTP/2 (py-spy, ``bench/ws_h2.py``), h2's receiving was 15% of the worker's time
and its sending 7%, next to zlib's 24%.

``DataFrameH2Connection`` adds two calls for exactly that case and leaves every other
frame, and every other case of a DATA frame, to h2:

- ``take_data(stream_id, length)``: a received DATA frame of ``length`` bytes, without
  padding or END_STREAM, on a stream h2 has OPEN, while the connection is OPEN: the
  connection's and the stream's receive windows consume it (a client over its window is
  h2's ``FlowControlError``, a connection error with GOAWAY, as from h2's own path), and the
  request's Content-Length counts it (h2's check, the same error). False when the frame is
  not that case: the caller then gives its bytes to ``receive_data``, h2's own path, which
  answers a DATA frame on a closed or half-closed stream as it always did.
- ``send_data_frame(stream_id, data)``: a DATA frame without END_STREAM on a stream h2 has
  OPEN or HALF_CLOSED_REMOTE, within both send windows and the peer's frame size: the
  windows shrink as h2's ``send_data`` shrinks them and the frame joins the output
  (``output.py``). Otherwise it is h2's ``send_data``, with its checks and errors.
  ``try_data_frame`` is the same without the fallback: False, nothing sent, when the frame
  is not that case (a stream's ``send_data`` with nothing queued tries it first).

The caller (``connection.py``) walks the frame headers of what it reads and offers only
whole DATA frames received at a frame boundary, outside a header block (h2 buffers a
HEADERS frame's CONTINUATIONs and must see what interrupts them).
``tests/test_h2_data_frames.py`` drives the same traffic through both paths and compares
the windows, the states and the bytes sent.

The windows and states read here are h2 4.x's (``pyproject.toml`` pins ``h2>=4.1,<5``):
``available()`` says whether this h2 has them; without them the connection uses
``BufferedH2Connection`` and every frame goes through h2.
"""

from __future__ import annotations

from typing import Any

from h2.config import H2Configuration
from h2.connection import ConnectionState
from h2.exceptions import ProtocolError
from h2.stream import StreamState
from hyperframe.frame import HeadersFrame, SettingsFrame

from .output import FRAME_HEADER, BufferedH2Connection

__all__ = ["DataFrameH2Connection", "available"]

_OPEN = StreamState.OPEN
_SENDING = (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)
_CONN_OPEN = ConnectionState.SERVER_OPEN  # (a server's open connection)


class DataFrameH2Connection(BufferedH2Connection):
    """A ``BufferedH2Connection`` that takes and sends plain DATA frames itself."""

    def take_data(self, stream_id: int, length: int) -> bool:
        """Account a received DATA frame (see the module's doc); False: give it to h2."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.state_machine.state is not _OPEN \
                or self.state_machine.state is not _CONN_OPEN:
            return False
        try:
            self._inbound_flow_control_window_manager.window_consumed(length)
            stream._inbound_window_manager.window_consumed(length)
            stream._track_content_length(length, False)
        except ProtocolError as exc:  # as h2's receive_data: GOAWAY with the error's code
            self._terminate_connection(exc.error_code)
            raise
        return True

    def send_data_frame(self, stream_id: int, data: Any) -> None:
        """Send ``data`` (bytes) in one DATA frame without END_STREAM."""
        if not self.try_data_frame(stream_id, data):
            self.send_data(stream_id, data)  # h2's own path: its checks, its errors

    def try_data_frame(self, stream_id: int, data: bytes) -> bool:
        """``send_data_frame`` where it needs no h2 (see the module's doc); else False,
        nothing sent."""
        stream = self.streams.get(stream_id)
        size = len(data)
        if stream is None or not size or stream.state_machine.state not in _SENDING \
                or self.state_machine.state is not _CONN_OPEN or self._data_to_send \
                or size > self.max_outbound_frame_size \
                or size > self.outbound_flow_control_window \
                or size > stream.outbound_flow_control_window:
            return False
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        parts = self._parts
        parts.append(FRAME_HEADER.pack(size >> 8 & 0xFFFF, size & 0xFF, 0, 0,
                                       stream_id & 0x7FFFFFFF))
        parts.append(data)
        self._parts_size += 9 + size
        return True


def available() -> bool:
    """Whether this h2 has the windows and states ``DataFrameH2Connection`` keeps: a
    request stream opened, one DATA frame taken and one sent, the windows checked."""
    try:
        conn = DataFrameH2Connection(H2Configuration(client_side=False))
        conn.initiate_connection()
        request = HeadersFrame(1, b"\x82\x84\x86\x41\x01a", flags=["END_HEADERS"])
        conn.receive_data(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                          + SettingsFrame(0).serialize() + request.serialize())
        stream = conn.streams[1]
        window = conn.inbound_flow_control_window
        sending = conn.outbound_flow_control_window
        taken = conn.take_data(1, 10)
        conn.send_data_frame(1, b"x" * 10)
        return (taken and conn.inbound_flow_control_window == window - 10
                and stream.inbound_flow_control_window == window - 10
                and conn.outbound_flow_control_window == sending - 10
                and stream.outbound_flow_control_window == sending - 10)
    except Exception:  # noqa: BLE001 - any difference: h2's own path
        return False
