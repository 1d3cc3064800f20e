"""HTTP/2 connection protocol (RFC 9113) on the ``h2`` state machine: frames in, request
streams out to the same adapters HTTP/1.1 drives; each stream is an ``H2Stream``.

Reached from the HTTP/1 connection on the same port: over TLS when ALPN picked ``h2``,
in the clear when the client opens with the connection preface (prior knowledge). Output
is written once per read and once per loop turn (``H2Shared.mark_dirty``), not per frame.

Flow control both ways: the connection's receive window is granted whole at the start
(CONNECTION_WINDOW) and credited as bytes arrive, so one stream whose app does not read
never starves the others; each stream's window is credited as its app takes the body
(``H2Stream.received``, ``resume_reading``). Response bytes wait in their stream's outbox
for the client's windows (``blocked``, pumped on WINDOW_UPDATE).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import Settings
from hyperframe.frame import GoAwayFrame

from ...http_common import ProtocolError as HTTPError
from . import data_frames, frame_repr
from .data_frames import DataFrameH2Connection
from .fields import Malformed, check_trailers, request_head
from .hpack_out import StaticEncoder
from .output import connection_class
from .shared import CONNECTION_WINDOW
from .stream import H2Stream

if TYPE_CHECKING:  # pragma: no cover
    from ...worker_state import WorkerState
    from .shared import H2Shared

__all__ = ["HTTP2Connection"]

logger = logging.getLogger("betula.error")

# h2's connection: its output as buffers (output.py), plain DATA frames taken and sent
# without h2's frame objects (data_frames.py) where this h2 allows
_DATA_FRAMES = data_frames.available()
_H2CONNECTION = DataFrameH2Connection if _DATA_FRAMES else connection_class()
frame_repr.install()  # (the received frames' repr h2 builds: frame_repr.py)

# Rapid reset (CVE-2023-44487): a client that opens streams and resets them before their
# answer makes the server start work it never finishes. Each such reset takes a token from
# a bucket of RESET_BURST that refills at RESET_RATE a second; an empty bucket ends the
# connection (GOAWAY ENHANCE_YOUR_CALM). A browser cancelling navigations and downloads
# stays far below.
RESET_BURST = 200
RESET_RATE = 100.0
# Floods (PING and SETTINGS, which make the server answer; empty DATA, PRIORITY and unknown
# frames, which make it do nothing): each takes a token of a bucket of CONTROL_BURST that
# refills at CONTROL_RATE a second; an empty bucket ends the connection the same way.
CONTROL_BURST = 1000
CONTROL_RATE = 200.0


class _Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` a second; ``what`` and
    ``name`` say in the log what ran it out."""

    __slots__ = ("burst", "rate", "what", "name", "tokens", "time")

    def __init__(self, burst: int, rate: float, what: str, name: str) -> None:
        self.burst = burst
        self.rate = rate
        self.what = what
        self.name = name
        self.tokens = float(burst)
        self.time = 0.0

    def take(self, now: float) -> bool:
        """One token, if there is one left at ``now``."""
        tokens = min(self.burst, self.tokens + (now - self.time) * self.rate)
        self.time = now
        if tokens < 1:
            return False
        self.tokens = tokens - 1
        return True


class _Settings(Settings):
    """The settings Betula announces, with h2's own stream limit lifted: one stream over
    MAX_CONCURRENT_STREAMS is a connection error in h2 (GOAWAY, every stream lost), where
    RFC 9113 §5.1.2 refuses that stream only (REFUSED_STREAM, which a client may retry):
    the connection counts and refuses (``_on_request``). The SETTINGS frame still carries
    the real value (h2 sends the mapping's items, not this property)."""

    @property
    def max_concurrent_streams(self) -> int:
        return 2**31 - 1


class HTTP2Connection(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine and its request streams."""

    metrics_protocol = "http2"  # (the label of its kind in the metrics' connection counts)

    def __init__(self, shared: H2Shared, state: WorkerState, http: Any,
                 websocket: Any = None) -> None:
        self.shared = shared
        self.state = state
        self.config = shared.config
        self.loop = state.loop
        self._http_factory = http
        self._ws_factory = websocket
        self.h2 = _H2CONNECTION(config=shared.h2_config)
        self.h2.encoder = StaticEncoder()  # responses' field blocks, cached (hpack_out.py)
        self.transport: Any = None
        self.scheme = "http"
        self.proxy: Any = None  # a trusted proxy's connection: its ProxyTrust (proxy.py)
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.iface_cache: Any = None  # the adapter's per-connection template, for every stream
        self.streams: dict[int, H2Stream] = {}
        self.blocked: dict[int, H2Stream] = {}  # streams waiting for the client's window
        self.transport_paused = False
        self._dirty = False
        self._closed = False
        self._draining = False
        self._goaway_id = 2**31 - 1  # streams above it are refused (graceful stop)
        self._idle_since = state.loop.time() if state.loop is not None else 0.0
        self._conn_unacked = 0
        self._resets = _Bucket(RESET_BURST, RESET_RATE, "reset streams", "rapid reset")
        self._controls = _Bucket(CONTROL_BURST, CONTROL_RATE, "sent control frames", "flood")
        # Frame boundaries, followed as bytes arrive (see _walk): bytes to skip
        # before the next frame header (the client's 24-byte preface first), and the part
        # of a header cut by a read.
        self._skip = 24
        self._header = b""
        self._in_block = False  # inside a header block (HEADERS until END_HEADERS)

    # -- the switch from HTTP/1 ------------------------------------------------------------
    def begin(self, transport: Any, scheme: str, client: Any, sockname: Any,
              data: bytes, upgrade: Any = None) -> None:
        """Take over ``transport`` from the HTTP/1 connection (after ALPN, the preface or
        an ``Upgrade: h2c``: then ``upgrade`` is the request stream 1 answers, with the
        client's settings), with the bytes read so far."""
        self.transport = transport
        self.scheme = scheme
        self.client = client
        self.sockname = sockname
        self.state.connections.add(self)
        h2 = self.h2
        # A new Settings object, not update(): h2 takes updated values only once the client
        # acknowledges them, and would announce its defaults meanwhile.
        h2.local_settings = _Settings(client=False, initial_values=self.shared.settings)
        if upgrade is None:
            h2.initiate_connection()
        else:
            h2.initiate_upgrade_connection(upgrade.settings)
        # What replacing the settings does not tell h2's own state (it takes them when the
        # client acknowledges): the frame size and the header list bound it enforces.
        h2.max_inbound_frame_size = self.config.h2_max_frame_size
        h2.decoder.max_header_list_size = self.config.h2_max_header_list_size
        h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        if upgrade is not None:
            self._upgraded(upgrade)
        self.flush()
        if data:
            self.data_received(data)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # pragma: no cover - see begin()
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.state.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.lost()
        self.streams.clear()
        self.blocked.clear()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self.transport_paused = True
        for stream in self.streams.values():
            stream.write_paused = True

    def resume_writing(self) -> None:
        self.transport_paused = False
        self.pump_blocked()
        for stream in list(self.streams.values()):
            stream.transport_resumed()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        fast = self._walk(data)
        if fast is None:
            return  # a frame over the size limit: the connection is closed
        starts: list[H2Stream] = []
        if not fast:
            if not self._receive(data, starts):
                return
        else:  # plain DATA frames taken here, the frames between them given to h2
            pos = 0
            for start, end, sid in fast:
                if start > pos and not self._receive(data[pos:start], starts):
                    return
                pos = end
                length = end - start - 9
                try:
                    taken = self.h2.take_data(sid, length)
                except ProtocolError as exc:  # over the client's window: GOAWAY queued
                    self._protocol_error(exc)
                    return
                if taken:
                    self._on_data(sid, data[start + 9:end], length)
                    if self._closed:
                        return
                elif not self._receive(data[start:end], starts):
                    return
            if pos < len(data) and not self._receive(data[pos:], starts):
                return
        for stream in starts:
            cycle = stream.cycle
            if cycle is not None and not cycle.started and not stream.done:
                cycle.start()
        self.flush()

    def _receive(self, data: bytes, starts: list[H2Stream]) -> bool:
        """Give ``data`` to h2 and act on its events (the streams it opens join
        ``starts``); False when the connection is over."""
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:  # h2 has queued the GOAWAY with its error code
            self._protocol_error(exc)
            return False
        for event in events:
            kind = event.__class__
            if kind is DataReceived:
                if not event.flow_controlled_length and event.stream_ended is None \
                        and not self._allowed(self._controls):
                    return False  # an empty DATA frame does nothing: counted as a flood
                self._on_data(event.stream_id, event.data, event.flow_controlled_length)
            elif kind is RequestReceived:
                stream = self._on_request(event)
                if stream is not None:
                    starts.append(stream)
            elif kind is StreamEnded:
                self._on_end(event.stream_id)
            elif kind is WindowUpdated:
                if event.stream_id:
                    stream = self.blocked.pop(event.stream_id, None)
                    if stream is not None:
                        stream.pump()
                else:
                    self.pump_blocked()
            elif kind is StreamReset:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.lost()
                    if not self._allowed(self._resets):
                        return False
            elif kind is RemoteSettingsChanged:
                if not self._allowed(self._controls):
                    return False
                self.pump_blocked()
            elif kind is PingReceived or kind is PriorityUpdated \
                    or kind is UnknownFrameReceived:
                if not self._allowed(self._controls):
                    return False
            elif kind is TrailersReceived:  # dropped, as on HTTP/1.1, once checked
                try:
                    check_trailers(event.headers)
                except Malformed as exc:
                    logger.info("%s - HTTP/2 stream %d: malformed trailers: %s",
                                _who(self.client), event.stream_id, exc)
                    stream = self.streams.get(event.stream_id)
                    if stream is not None:
                        stream.reset(ErrorCodes.PROTOCOL_ERROR)
                    else:
                        self._refuse(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
            elif kind is ConnectionTerminated:
                self.flush()
                self.close()
                return False
        return not self._closed

    def _protocol_error(self, exc: ProtocolError) -> None:
        logger.info("%s - HTTP/2 protocol error: %s", _who(self.client), exc)
        self.flush()
        self.close()

    # -- events ----------------------------------------------------------------------------
    def _on_request(self, event: RequestReceived) -> H2Stream | None:
        sid = event.stream_id
        if sid > self._goaway_id or len(self.streams) >= self.shared.max_streams:
            self._refuse(sid, ErrorCodes.REFUSED_STREAM)
            return None
        try:
            head = request_head(event.headers)
        except Malformed as exc:  # RFC 9113 §8.1.1: a stream error, the others go on
            logger.info("%s - HTTP/2 stream %d: malformed request: %s", _who(self.client),
                        sid, exc)
            self._refuse(sid, ErrorCodes.PROTOCOL_ERROR)
            return None
        method, path, protocol = head.method, head.path, head.protocol
        stream = H2Stream(self, sid)
        self.streams[sid] = stream
        stream.iface_cache = self.iface_cache
        self._idle_since = 0.0
        ended = event.stream_ended is not None
        factory = self._http_factory
        if method == b"CONNECT":
            # Extended CONNECT (RFC 8441) opens a WebSocket; any other CONNECT (a tunnel)
            # is not served.
            if protocol.lower() != b"websocket" or self._ws_factory is None:
                stream.fail_response(501, "CONNECT is not supported" if not protocol
                                     else "Unsupported :protocol")
                return None
            factory = self._ws_factory
        if not path or (path[0] != 47 and path != b"*"):
            stream.fail_response(400, "Invalid :path")
            return None
        if self.state.limit_concurrency and self.state.over_limit():
            stream.fail_response(503, "Service Unavailable: too many connections")
            return None
        try:
            stream.cycle = factory(stream, method, path, tuple(head.fields), "2", True,
                                   not ended, head.expect_continue, True)
        except HTTPError as err:  # --limit-concurrency and the like
            stream.fail_response(err.status, err.reason)
            return None
        if factory is self._ws_factory and stream.websocket is None:
            # The app there is no WebSocket app (a WSGI mount answers upgrades as HTTP):
            # over HTTP/2 its 2xx would read as an open WebSocket, so it is not run.
            stream.cycle = None
            stream.fail_response(501, "No WebSocket endpoint at this path")
            return None
        self.iface_cache = stream.iface_cache
        return stream

    def _upgraded(self, upgrade: Any) -> None:
        """Stream 1: the HTTP/1.1 request that asked for the upgrade (no body)."""
        stream = H2Stream(self, 1)
        self.streams[1] = stream
        stream.iface_cache = self.iface_cache
        self._idle_since = 0.0
        stream.cycle = self._http_factory(stream, upgrade.method, upgrade.url,
                                          upgrade.headers, "2", True, False, False, True)
        self.iface_cache = stream.iface_cache
        stream.cycle.start()

    def _on_data(self, sid: int, data: bytes, size: int) -> None:
        """A DATA frame's ``data`` (``size`` bytes against the windows, padding included)."""
        # The connection's window: credited on arrival (each stream keeps to its own).
        self._conn_unacked += size
        if self._conn_unacked >= CONNECTION_WINDOW // 2:
            self.h2.increment_flow_control_window(self._conn_unacked)
            self._conn_unacked = 0
        stream = self.streams.get(sid)
        if stream is None or stream.cycle is None or stream.done:
            return  # a stream answered or refused: its data is dropped
        stream.received(size)
        if stream.websocket is not None:
            stream.websocket.data(data)
            return
        cycle = stream.cycle
        limit = self.config.limit_request_body
        if limit and stream.body_bytes > limit:
            if stream.response_status == 0 and not cycle.response_started:
                cycle.connection_lost()
                stream.fail_response(413, "Request Entity Too Large")
            stream.reset(ErrorCodes.CANCEL)
            return
        cycle.feed_body(data)

    def _on_end(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is None or stream.cycle is None:
            return
        if stream.websocket is not None:
            stream.websocket.end()
            return
        cycle = stream.cycle
        if not cycle.body_complete:
            cycle.end_body()

    def _walk(self, data: bytes) -> list[tuple[int, int, int]] | None:
        """Read the frame headers in ``data``: the plain DATA frames h2 need not see, as
        (start, end, stream id) (``data_frames.py``: whole in ``data``, with a payload and
        no padding or END_STREAM, on a stream being served, outside a header block); None
        when a frame is longer than --h2-max-frame-size, which ends the connection (GOAWAY
        FRAME_SIZE_ERROR) from its 9-byte header, before its bytes come (h2 checks the
        length only once it holds the whole frame: a client declaring 16 MiB frames would
        make the server buffer 16 MiB a connection)."""
        pos = self._skip
        size = len(data)
        header = self._header
        limit = self.config.h2_max_frame_size
        streams = self.streams if _DATA_FRAMES else None  # (data_frames.py)
        in_block = self._in_block
        fast: list[tuple[int, int, int]] = []
        while pos < size:
            if header or size - pos < 9:  # a header cut by a read: its frame is h2's
                take = 9 - len(header)
                header += data[pos:pos + take]
                pos += take
                if len(header) < 9:
                    break
                length = int.from_bytes(header[:3], "big")
                kind = header[3]
                flags = header[4]
                header = b""
                start = -1
            else:
                start = pos
                length = int.from_bytes(data[pos:pos + 3], "big")
                kind = data[pos + 3]
                flags = data[pos + 4]
                pos += 9
            if length > limit:
                logger.info("%s - HTTP/2 frame of %d bytes, over %d", _who(self.client),
                            length, limit)
                self.h2.close_connection(ErrorCodes.FRAME_SIZE_ERROR)
                self.flush()
                self.close()
                return None
            if kind == 0:  # DATA
                if start >= 0 and length and not flags & 0x9 and not in_block \
                        and pos + length <= size and streams:
                    sid = int.from_bytes(data[start + 5:pos], "big") & 0x7FFFFFFF
                    if sid in streams:
                        fast.append((start, pos + length, sid))
            elif kind == 1 or kind == 5 or kind == 9:  # HEADERS, PUSH_PROMISE, CONTINUATION
                in_block = not flags & 0x4  # (END_HEADERS)
            pos += length
        self._skip = pos - size if pos > size else 0
        self._header = header
        self._in_block = in_block
        return fast

    def _allowed(self, bucket: _Bucket) -> bool:
        """A frame ``bucket`` counts (see RESET_BURST, CONTROL_BURST): take a token; none
        left: GOAWAY ENHANCE_YOUR_CALM and close."""
        if bucket.take(self.loop.time()):
            return True
        logger.warning("%s - HTTP/2 client %s faster than %d a second: closing (%s)",
                       _who(self.client), bucket.what, bucket.rate, bucket.name)
        self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
        self.flush()
        self.close()
        return False

    def _refuse(self, sid: int, code: int) -> None:
        try:
            self.h2.reset_stream(sid, code)
        except H2Error:
            pass

    # -- output ----------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        if not self._dirty and not self._closed:
            self._dirty = True
            self.shared.mark_dirty(self)

    def flush(self) -> None:
        self._dirty = False
        if self._closed:
            return
        parts = self.h2.take_output()
        if parts:
            if len(parts) == 1:
                self.transport.write(parts[0])
            elif self.scheme == "https":
                # One write: a TLS transport makes a record of each buffer it is given
                # (uvloop's SSL writes them one by one), 9-byte frame headers included.
                self.transport.write(b"".join(parts))
            else:  # large output: the payloads as they are (writev)
                self.transport.writelines(parts)

    def pump_blocked(self) -> None:
        if self.transport_paused:
            return
        blocked, self.blocked = self.blocked, {}
        for stream in blocked.values():
            stream.pump()

    def stream_sent(self, stream: H2Stream) -> None:
        """END_STREAM is out for ``stream``."""
        if stream.done:
            self.stream_finished(stream)

    def stream_finished(self, stream: H2Stream) -> None:
        """``stream``'s exchange is over (its response complete and sent, or reset)."""
        sid = stream.stream_id
        if not stream.ended and not stream.closed:
            return  # still sending (its outbox waits for window): not over yet
        if self.streams.pop(sid, None) is None:
            return
        self.blocked.pop(sid, None)
        cycle = stream.cycle
        if cycle is not None and not cycle.body_complete and not stream.closed:
            # The response is complete before the request body: stop the client sending
            # (RFC 9113 §8.1).
            self._refuse(sid, ErrorCodes.NO_ERROR)
            self.mark_dirty()
        stream.release()
        if not self.streams:
            self._idle_since = self.loop.time()
            if self._draining:
                self.flush()
                self.close()

    # -- the worker's calls ----------------------------------------------------------------
    def check_timeouts(self, now: float) -> None:
        """Once a tick: an idle connection past --timeout-keep-alive gets GOAWAY; a stream
        whose body stopped arriving for --timeout-request-body gets a 408 (RST_STREAM
        once its response has begun)."""
        if self._closed:
            return
        if not self.streams and self._idle_since and \
                now - self._idle_since > self.config.timeout_keep_alive:
            self.shutdown()
            return
        limit = self.config.timeout_request_body
        for stream in list(self.streams.values()):
            if stream.waits_for_body and now - stream.body_since > limit:
                logger.info("%s - HTTP/2 stream %d: request body timed out",
                            _who(self.client), stream.stream_id)
                cycle = stream.cycle
                if not cycle.response_started and stream.response_status == 0:
                    cycle.connection_lost()
                    stream.fail_response(408, "Request Timeout")
                    self._refuse(stream.stream_id, ErrorCodes.NO_ERROR)
                else:
                    stream.reset(ErrorCodes.CANCEL)
                self.mark_dirty()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY naming the last stream taken; those finish, then close.
        (Written by hand: h2's close_connection() would end every stream now.)"""
        if self._closed or self._draining:
            return
        self._draining = True
        self._goaway_id = self.h2.highest_inbound_stream_id
        self.flush()
        self.transport.write(GoAwayFrame(0, last_stream_id=self._goaway_id,
                                         error_code=0).serialize())
        for stream in list(self.streams.values()):
            cycle = stream.cycle
            if cycle is not None:
                cycle.server_shutdown()
        if not self.streams:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()


def _who(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"
