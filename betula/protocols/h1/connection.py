"""HTTP/1.1 connection protocol: bytes in, request events out; response parts in, bytes out.

The protocol knows nothing of ASGI or WSGI. For each request it creates a *handler* through
the router's factory (the interface adapter's ``StreamHandler``) and feeds it body events;
the connection is the handler's ``Stream`` (``protocols/stream.py``), and ``response.py``
frames what the handler sends.

Parsing is httptools (llhttp, strict mode), its callbacks in ``parsing.py``; a head byte for
byte equal to one llhttp accepted before is replayed instead (data_received here,
``HTTP1Parsing._record_replay``). With ``--log-level trace`` each
head kept for replay, each replayed one and each emptying of the full set is logged
("CLIENT - head kept for replay: b'...'", "CLIENT - head replayed: b'...'"), so the replay
can be seen from outside. Every protocol-level failure is a
``ProtocolError`` carrying the status to answer with; the connection then answers once and
closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httptools

from ...logs import TRACE
from ..flow import WRITE_HIGH_WATER, WRITE_LOW_WATER, WriteFlow
from .h2c import PREFACE, Upgrade
from .head import SCAN, Replay
from .parsing import (
    _BUSY,
    _IDLE,
    _READING_HEAD,
    PIPELINE_HIGH_WATER,
    UPGRADE_BUFFER,
    HTTP1Parsing,
    _who,
)
from .response import HTTP1Response
from .upgrade import HTTP1WebSocket

if TYPE_CHECKING:  # pragma: no cover
    from ...worker_state import WorkerState
    from .shared import HTTP1Shared

__all__ = ["HTTP1Connection"]

logger = logging.getLogger("betula.error")

# On a graceful stop, how long a connection that has sent nothing yet may take to send its
# request (it may have been accepted just before the listener closed).
SHUTDOWN_GRACE = 1.0

_UNLIMITED = 1 << 62
# Heads kept for replay are of at most this many bytes (request line and fields).
REPLAY_HEAD_BYTES = 2048


class HTTP1Connection(HTTP1Parsing, HTTP1Response, WriteFlow, asyncio.Protocol):
    """One client connection speaking HTTP/1.0 and HTTP/1.1; the stream of its current
    exchange (the request side is HTTP1Parsing, the response side HTTP1Response)."""

    metrics_protocol = "http1"  # (the label of its kind in the metrics' connection counts)

    __slots__ = (
        # the current response (response.py)
        "held_head",
        "held_out",
        "response_status",
        "response_bytes",
        "response_headers",
        "trailers_pending",
        "_r_chunked",
        "_r_length",
        "_r_no_body",
        "_r_trailer_block",
        "_begins",
        "_body_bytes",
        "_body_since",
        "_closed",
        "_completing",
        "_http_factory",
        "_ws_factory",
        "_done_reading",
        "_drain_callbacks",
        "_drain_waiters",
        "_feed_body",
        "_head_bytes",
        "_head_started",
        "_headers",
        "_in_head",
        "_limits",
        "_scan_limits",
        "_h2",
        "_maybe_h2",
        "_preface",
        "_h2c",
        "_heads",
        "_body_limit",
        "_trailer_bytes",
        "_trailer_fields",
        "_draining",
        "_drain_since",
        "_served",
        "_parsing",
        "_pending_error",
        "_replays",
        "_replayable",
        "_record",
        "_trace",
        "_read_paused",
        "_state",
        "_state_since",
        "_upgrade",
        "_upgrade_data",
        "_limit_concurrency",
        "_url",
        "write_paused",
        "_transport_paused",
        "turn_paused",
        "client",
        "given_client",
        "config",
        "cycle",
        "iface_cache",
        "loop",
        "parser",
        "pipeline",
        "proxy",
        "_proxy_trust",
        "scheme",
        "shared",
        "sockname",
        "state",
        "transport",
    )

    def __init__(self, shared: HTTP1Shared, state: WorkerState, http: Callable[..., Any],
                 websocket: Callable[..., Any] | None = None,
                 h2: Callable[[], Any] | None = None) -> None:
        self.shared = shared
        # A new HTTP/2 connection, to hand the transport to (ALPN h2, or the preface);
        # None: HTTP/1.1 only. _maybe_h2: the first bytes are still to come.
        self._h2 = h2
        self._maybe_h2 = h2 is not None
        self._preface = b""  # the start of a preface split across reads
        self._h2c: Upgrade | None = None  # an Upgrade: h2c to do once llhttp stops
        self.state = state
        self.config = shared.config
        self.loop = state.loop
        self._http_factory = http  # the router's: a handler for each request
        self._ws_factory = websocket  # for a WebSocket upgrade (None: answered as HTTP)
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        # --proxy-protocol: the client a PROXY header named, set by the listener before
        # connection_made (proxy_listener.py); None: the socket's peer is the client.
        self.given_client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.scheme = "http"
        # A trusted proxy's connection: its ProxyTrust (proxy.py); ``proxy`` is it for a
        # request that has proxy headers (the adapters read them then), else None.
        self._proxy_trust: Any = None
        self.proxy: Any = None
        self.cycle: Any = None  # the request being answered
        self.pipeline: deque[Any] = deque()  # parsed requests waiting their turn
        self._parsing: Any = None  # the request whose body is being parsed
        self._closed = False
        self._read_paused = False
        self.write_paused = False  # the transport's, or the loop turn's (turn_paused)
        self._transport_paused = False
        self.turn_paused = False  # a stream sent HELD_CHUNKS this turn: it waits for the next
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._drain_callbacks: list[Callable[[], None]] = []
        self._state = _IDLE
        self._state_since = 0.0
        self._body_since = 0.0  # the coarse clock at the last read (body timeout)
        self._upgrade = False
        self._upgrade_data = b""  # bytes read past an upgrade request (a WebSocket's first)
        self.iface_cache: Any = None  # per-connection data of the interface adapter
        self.held_head: bytes | None = None
        self.held_out: list[bytes] = []  # body chunks written at the end of the loop turn
        self.trailers_pending = False
        self.response_status = self.response_bytes = 0
        self.response_headers: Any = None
        self._in_head = False  # between the first byte of a request and its blank line
        self._head_bytes = 0  # bytes received while one head stayed incomplete
        self._pending_error: tuple[int, str] | None = None  # answered after earlier requests
        self._done_reading = False  # a request without keep-alive ended: ignore what follows
        self._begins = 0  # messages begun so far (tells whether one began within a read)
        self._draining = False  # graceful stop under way
        self._drain_since = 0.0
        self._served = 0  # responses completed on this connection
        self._feed_body = 0  # body bytes parsed from the current read
        config = self.config
        self._limit_concurrency = config.limit_concurrency
        # (field size, header section size, field count); 0 in the settings means no limit.
        self._limits = (config.limit_request_field_size or _UNLIMITED,
                        config.limit_request_header_size or _UNLIMITED,
                        config.limit_request_fields or _UNLIMITED)
        # SCAN's arguments after the bytes: the request line limit, the three above, the
        # body limit (0: none, for the line and the body).
        # (Clamped: the settings take any size, C takes 63 bits; 0 stays "none".)
        self._scan_limits = tuple(min(limit, _UNLIMITED) for limit in (
            config.limit_request_line, *self._limits, config.limit_request_body))
        self._heads = shared.head_cache
        self._replays = shared.replay_cache
        # --log-level trace logs the heads kept and replayed; asked here, not per request
        self._trace = logger.isEnabledFor(TRACE)
        self._replayable: Replay | None = None  # the parse of the head to keep
        self._record = 0  # this read's head is to be kept for replay (see _parse)
        self._completing: bytes | None = None  # the method of a head being checked
        self._body_limit = config.limit_request_body
        self._trailer_bytes = self._trailer_fields = 0
        self.on_message_begin()  # sets the per-request head state
        self._head_started = self._in_head = False
        self._begins = 0

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.state.connections.add(self)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - platform specific
                pass
        self.client = _addr(transport.get_extra_info("peername"))
        self.sockname = _addr(transport.get_extra_info("sockname"))
        trust = self.shared.proxy_trust
        if trust is not None and trust.trusts(self.client[0] if self.client else None):
            self._proxy_trust = trust
        if self.given_client is not None:  # (proxy headers are trusted on the socket's peer)
            self.client = self.given_client
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
            if self._h2 is not None:
                ssl_object = transport.get_extra_info("ssl_object")
                if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                    self._switch_to_h2(b"")
                    return
        self._state = _IDLE
        self._state_since = self.state.clock

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.state.connections.discard(self)
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.connection_lost()
        self.pipeline.clear()
        self._wake_drain()

    def data_received(self, data: bytes) -> None:
        if self._maybe_h2:
            # The connection's first bytes: the HTTP/2 preface (prior knowledge) hands the
            # connection over; anything else is HTTP/1.1 from here on.
            if self._preface:
                data, self._preface = self._preface + data, b""
            if data[:1] == b"P" and PREFACE.startswith(data[:24]):
                if len(data) >= 24:
                    self._switch_to_h2(data)
                else:
                    self._preface = data  # more of the preface to come
                return
            self._maybe_h2 = False
        if self._closed or self._done_reading or self._pending_error is not None:
            if self._upgrade and not self._closed:
                # Early frames, kept for the WebSocket; reading goes on (bounded) so that
                # a client leaving before the app accepts is noticed.
                self._upgrade_data += data
                if len(self._upgrade_data) > UPGRADE_BUFFER:
                    self.pause_reading()
            return
        if self._state == _IDLE:
            self._state = _READING_HEAD
            self._state_since = self.state.clock
        entry = None
        record = 0
        how = "replayed"
        keep = False  # a scanned head seen before: kept for replay once served
        if not self._head_started:
            # At a message boundary. A head byte for byte the same as one parsed before
            # (clients repeat their head request after request) is not parsed again: its
            # parse and analysis are replayed (see _record_replay for what makes it safe).
            # Else a whole message of the strict common kind is read in one C call (SCAN,
            # head.py); anything else is llhttp's.
            end = data.find(b"\r\n\r\n")
            if end > 0:
                admitted = False
                if end <= REPLAY_HEAD_BYTES:
                    key = data[:end]
                    replays = self._replays
                    entry = replays.entries.get(key)
                    if entry is None and key in replays.previous:  # (no call on a plain miss)
                        entry = replays.recall(key)
                    if entry is None:
                        admitted = replays.admit(key)  # seen before: kept this time
                    elif len(data) != end + 4 + entry.head.length:
                        entry = None  # not exactly the whole message: llhttp's
                if entry is None:
                    entry = SCAN(data, *self._scan_limits) if SCAN is not None else None
                    if entry is not None:
                        how = "scanned"
                        keep = admitted
                    elif admitted:
                        record = end  # kept if llhttp accepts it and it qualifies
        if entry is not None:
            if self._replay(entry, data, end + 4, how) and keep:
                self._keep_replay(key, entry)  # a head the checks let through, as llhttp's
        else:
            self._parse(data, record)
            if self._parsing is not None:  # a body is still to come (see check_timeouts)
                self._body_since = self.state.clock
        # Requests parsed before any error are still answered (in order).
        cycle = self.cycle
        if cycle is not None and not cycle.started and not self._closed:
            cycle.start()

    def eof_received(self) -> bool | None:
        # The client closed its side: take it as gone (as browsers and proxies mean it), so
        # an app waiting in receive() or streaming gets http.disconnect at once.
        return None

    def pause_writing(self) -> None:
        self._transport_paused = self.write_paused = True

    def resume_writing(self) -> None:
        self._transport_paused = False
        if not self.turn_paused:
            self.write_paused = False
            self._wake_drain()

    def end_turn_pause(self) -> None:
        """The loop turn that paused a stream (turn_paused) ended: it may send again."""
        self.turn_paused = False
        if not self._transport_paused:
            self.write_paused = False
            self._wake_drain()

    # -- used by cycles ------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        if not self._closed:
            out = self.held_out
            if out:  # chunks held for the end of the loop turn go first, in the same write
                out.append(data)  # type: ignore[arg-type]
                data = b"".join(out)
                out.clear()
            self.transport.write(data)  # type: ignore[union-attr]

    def writelines(self, parts: Any) -> None:
        if not self._closed:
            out = self.held_out
            if out:
                self.transport.write(b"".join(out))  # type: ignore[union-attr]
                out.clear()
            self.transport.writelines(parts)  # type: ignore[union-attr]

    def upgrade_to(self, handler: Any, method: bytes, url: bytes,
                   headers: tuple[tuple[bytes, bytes], ...], http_version: str) -> Any:
        """The WebSocket stream (``ws_stream.WebSocketStream``, upgrade.py) of the upgrade
        request the adapter's ``handler`` answers; on accept it takes the transport over."""
        return HTTP1WebSocket(self, self._upgrade_hand_over, handler, method, url, headers,
                              http_version)

    def _upgrade_hand_over(self, protocol: Any) -> None:
        """Hand the transport to ``protocol`` (an accepted WebSocket's pipe), with the bytes
        read past the handshake; this connection object is done."""
        self.flush_out()  # what is held (the 101) goes before the new protocol's bytes
        self._closed = True
        self.state.connections.discard(self)
        data, self._upgrade_data = self._upgrade_data, b""
        if not self._read_paused:
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._read_paused = False
        protocol.attach(self.transport, data)  # resumes reading

    def _switch_to_h2(self, data: bytes, upgrade: Upgrade | None = None) -> None:
        """Hand the transport to a new HTTP/2 connection, with the bytes read so far (and
        the request an Upgrade: h2c made stream 1); this connection object is done."""
        self.flush_out()  # what is held goes before the HTTP/2 connection's bytes
        self._closed = True
        self._maybe_h2 = False
        self.state.connections.discard(self)
        conn = self._h2()  # type: ignore[misc]
        transport = self.transport
        transport.set_protocol(conn)  # type: ignore[union-attr]
        conn.proxy = self._proxy_trust
        conn.begin(transport, self.scheme, self.client, self.sockname, data, upgrade)

    def pause_reading(self) -> None:
        if not self._read_paused and not self._closed:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if self._read_paused and not self._closed and len(self.pipeline) < PIPELINE_HIGH_WATER \
                and self._pending_error is None and not self._upgrade:
            self._read_paused = False
            self._body_since = self.state.clock  # a pause of ours is not the client's delay
            self.transport.resume_reading()  # type: ignore[union-attr]

    def cycle_done(self, cycle: Any) -> None:
        """The cycle's response is complete (or it gave up); move to the next request."""
        if cycle is not self.cycle:
            return
        if self._closed:
            return
        if not cycle.keep_alive:
            self.close()
            return
        if not cycle.body_complete:
            # The app answered without reading the whole body: keep parsing and drop the
            # rest so the connection stays usable (bounded by --limit-request-body).
            cycle.discard_body()
            self.resume_reading()
            return
        self.cycle = None
        self._served += 1
        if self.pipeline:
            self.cycle = self.pipeline.popleft()
            if self._pending_error is None:
                self.resume_reading()
            # Start on the next loop turn, not nested inside this cycle's send().
            self.loop.call_soon(self._start_next)
        else:
            if self._pending_error is not None:
                status, reason = self._pending_error
                self._refuse(status, reason)
                return
            if self._upgrade:
                self.close()
                return
            if self._read_paused:
                self.resume_reading()
            if self._head_started:
                self._state = _READING_HEAD
            else:
                self._state = _IDLE
            self._state_since = self.state.clock

    def body_finished(self, cycle: Any) -> None:
        """The request body of a discarding cycle has ended: the connection is reusable."""
        if cycle is self.cycle and cycle.response_complete:
            self.cycle_done(cycle)

    def _start_next(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.started and not self._closed:
            cycle.start()

    def close(self) -> None:
        if not self._closed:
            self.flush_out()  # what the app sent goes before the close
            self._closed = True
            self.transport.close()  # type: ignore[union-attr]

    def abort(self) -> None:
        if self.transport is not None:
            self._closed = True
            self.transport.abort()

    def send_error(self, status: int, reason: str) -> None:
        """Answer a protocol error (nothing of the response sent yet) and close."""
        if self._closed:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            if self._parsing is not cycle:
                # The bad bytes belong to a later request: answer the earlier ones first.
                if self._pending_error is None:
                    self._pending_error = (status, reason)
                    self._log_protocol_error(status, reason)
                    self.pause_reading()
                return
            # The body of the request being answered is bad: its app sees a disconnect.
            cycle.connection_lost()
            if cycle.response_started:
                self._log_protocol_error(status, reason)
                self.close()
                return
        self._log_protocol_error(status, reason)
        self._refuse(status, reason)

    def _refuse(self, status: int, reason: str) -> None:
        """The server's own answer to a request it will not pass on, then the close."""
        metrics = self.state.metrics
        if metrics is not None:
            metrics.refused(status)
        self.write(self.shared.error_response(status, reason, self._answering_head()))
        self.close()

    def _answering_head(self) -> bool:
        """The refused request is a HEAD: its answer has no body. (The method is known once
        the request line has been read: llhttp reports the target after it.)"""
        cycle = self._parsing
        if cycle is not None:
            return cycle.is_head
        if self._completing is not None:  # refused while its head was checked
            return self._completing == b"HEAD"
        # llhttp's method is the request's only while llhttp reads its head (a replayed or
        # scanned request leaves the last one llhttp parsed behind)
        return self._in_head and bool(self._url) and self.parser.get_method() == b"HEAD"

    # -- timeouts (driven by the server's once-a-tick sweep, no per-request timers) -------
    def check_timeouts(self, now: float) -> None:
        state = self._state
        if state == _BUSY or self._closed:
            if self._parsing is not None and not self._read_paused and not self._closed \
                    and now - self._body_since >= self.config.timeout_request_body:
                # A request body stopped arriving (while reading it was up to the client).
                self.send_error(408, "Request body timeout")
            return
        if self._draining and self.cycle is None and now - self._drain_since >= SHUTDOWN_GRACE:
            self.close()
            return
        elapsed = now - self._state_since
        if state == _IDLE:
            if elapsed >= self.config.timeout_keep_alive:
                self.close()
        elif elapsed >= self.config.timeout_request_header:
            if self.cycle is None:
                self.send_error(408, "Request Timeout")
            # else the current cycle is still answering: the timer applies once it is done

    def shutdown(self) -> None:
        """Graceful stop: every request already received is answered, then the connection
        closes. A keep-alive connection idle between requests closes now; a fresh one (its
        request may be in flight: the listener accepted it just before closing) gets
        SHUTDOWN_GRACE seconds to send it."""
        self._draining = True
        self._drain_since = self.loop.time()
        if self.cycle is None and not self.pipeline:
            if self._served and not self._head_started:
                self.close()
            return
        last = self.pipeline[-1] if self.pipeline else self.cycle
        last.keep_alive = False
        if self.cycle is not None:
            self.cycle.server_shutdown()


    def _log_protocol_error(self, status: int, reason: str) -> None:
        logger.info("%s - bad request answered %d: %s", _who(self.client), status, reason)


def _addr(info: Any) -> Any:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None

