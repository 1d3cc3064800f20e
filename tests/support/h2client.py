"""A frame-level HTTP/2 client for tests (the ``h2`` library over a real socket): open
streams, send bodies and resets, hold back window credit, and read what the server sent
stream by stream."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


class _Unlimited(h2.settings.Settings):
    @property
    def max_concurrent_streams(self) -> int:
        return 2**31 - 1


@dataclass
class Result:
    """What came back on one stream."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, when reset
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)

    def header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


class H2Client:
    """One HTTP/2 connection. ``auto_credit`` False: no WINDOW_UPDATE is sent for what
    arrives (the test grants credit itself with ``credit``)."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 window: int | None = None, auto_credit: bool = True,
                 server_hostname: str = "localhost") -> None:
        raw = socket.create_connection((host, port), timeout=10)
        self.sock = tls.wrap_socket(raw, server_hostname=server_hostname) if tls else raw
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        self.auto_credit = auto_credit
        self.results: dict[int, Result] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str, path: str, headers: tuple[tuple[str, str], ...] = (),
                body: bytes | None = None, end: bool = True, authority: str = "test",
                chunks: tuple[bytes, ...] | None = None) -> int:
        """Open a stream; ``body`` (one DATA run) or ``chunks`` (a DATA frame each)."""
        sid = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":path", path.encode()),
                  (b":scheme", b"http"), (b":authority", authority.encode()),
                  *((n.encode("latin-1"), v.encode("latin-1")) for n, v in headers)]
        self.conn.send_headers(sid, fields, end_stream=body is None and chunks is None and end)
        self.results[sid] = Result()
        self._flush()
        if chunks is not None:
            for i, chunk in enumerate(chunks):
                self.send_data(sid, chunk, end and i == len(chunks) - 1)
            if not chunks and end:
                self.send_data(sid, b"", True)
        elif body is not None:
            self.send_data(sid, body, end)
        return sid

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        """Send ``data`` as the server's windows allow, reading (its WINDOW_UPDATEs and
        whatever else comes) while they are closed."""
        view = memoryview(data)
        while True:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0 and view:
                self.read_until(lambda: self.conn.local_flow_control_window(sid) > 0)
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(sid, chunk.tobytes(), end_stream=end and not view)
            self._flush()
            if not view:
                return

    def ignore_stream_limit(self) -> None:
        """Open streams past the server's MAX_CONCURRENT_STREAMS (h2 would refuse to)."""
        self.read_until(lambda: self.conn.remote_settings.max_concurrent_streams < 2**32)
        self.conn.remote_settings.__class__ = _Unlimited

    def reset(self, sid: int) -> None:
        self.conn.reset_stream(sid, 8)  # CANCEL
        self._flush()

    def credit(self, size: int, sid: int | None = None) -> None:
        self.conn.increment_flow_control_window(size, stream_id=sid)
        self._flush()

    def read_until(self, done, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        """Read frames until ``done()`` is true (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not done():
            assert not self.closed, "the server closed the connection"
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; streams so far: {self.results}"
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            if not data:
                self.closed = True
                continue
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Give h2 the frames one at a time: the frames after a GOAWAY in the same read must
        not reach it (see _after_goaway)."""
        self._inbuf = getattr(self, "_inbuf", b"") + data
        while len(self._inbuf) >= 9 and self.goaway is None:
            end = 9 + int.from_bytes(self._inbuf[:3], "big")
            if len(self._inbuf) < end:
                break
            frame, self._inbuf = self._inbuf[:end], self._inbuf[end:]
            for event in self.conn.receive_data(frame):
                self._event(event)
        self._flush()
        if self.goaway is not None and self._inbuf:
            rest, self._inbuf = self._inbuf, b""
            self._after_goaway(rest)

    def _after_goaway(self, data: bytes) -> None:
        """h2 refuses every frame once the server's GOAWAY came (its CLOSED state), while
        the server may still finish the streams GOAWAY let through: read those by hand
        (DATA, HEADERS with END_STREAM, RST_STREAM)."""
        self._rest = getattr(self, "_rest", b"") + data
        while len(self._rest) >= 9:
            length = int.from_bytes(self._rest[:3], "big")
            if len(self._rest) < 9 + length:
                return
            kind, flags = self._rest[3], self._rest[4]
            sid = int.from_bytes(self._rest[5:9], "big") & 0x7FFFFFFF
            payload, self._rest = self._rest[9:9 + length], self._rest[9 + length:]
            result = self.results.get(sid)
            if result is None:
                continue
            if kind == 0:  # DATA (no padding from Betula)
                result.body += payload
            if kind in (0, 1) and flags & 0x1:
                result.ended = True
            elif kind == 3:
                result.reset = int.from_bytes(payload[:4], "big")

    def _event(self, event) -> None:  # type: ignore[no-untyped-def]
        result = self.results.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.InformationalResponseReceived):
            fields = list(event.headers)
            result.informational.append((int(dict(fields)[b":status"]), fields))
        elif isinstance(event, h2.events.ResponseReceived):
            result.headers = list(event.headers)
            result.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            result.body += event.data
            if self.auto_credit and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            result.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            result.ended = True
        elif isinstance(event, h2.events.StreamReset):
            if result is not None:
                result.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, sid: int, timeout: float = 10.0) -> Result:
        """Stream ``sid``'s whole response (ended or reset)."""
        result = self.results[sid]
        self.read_until(lambda: result.ended or result.reset is not None, timeout)
        return result

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
