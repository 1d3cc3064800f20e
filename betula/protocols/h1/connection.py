"""HTTP/1.1 connection protocol: bytes in, request events out; response parts in, bytes out.

The protocol knows nothing of ASGI or WSGI. For each request it creates a *handler* through
the router's factory (the interface adapter's ``StreamHandler``) and feeds it body events;
the connection is the handler's ``Stream`` (``protocols/stream.py``), and ``response.py``
frames what the handler sends.

Parsing is httptools (llhttp, strict mode); a head byte for byte equal to one llhttp accepted
before is replayed instead (data_received, _record_replay). With ``--log-level trace`` each
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

from ...headers import is_token
from ...http_common import ProtocolError
from ...logs import TRACE
from ..flow import WRITE_HIGH_WATER, WRITE_LOW_WATER, WriteFlow
from .h2c import PREFACE, SWITCHING, Upgrade, h2c_upgrade
from .head import (
    HEAD_CACHE_BYTES,
    SCAN,
    HeadInfo,
    Replay,
    analyse_head,
    header_limit,
    scanned_replay,
)
from .response import HTTP1Response
from .shared import REPLAY_MAX
from .upgrade import HTTP1WebSocket

if TYPE_CHECKING:  # pragma: no cover
    from ...worker_state import WorkerState
    from .shared import HTTP1Shared

__all__ = ["HTTP1Connection"]

logger = logging.getLogger("betula.error")

# Pipelined requests parsed ahead of the one being answered before reading pauses.
PIPELINE_HIGH_WATER = 16
# On a graceful stop, how long a connection that has sent nothing yet may take to send its
# request (it may have been accepted just before the listener closed).
SHUTDOWN_GRACE = 1.0
# Bytes kept from a client that sends past an upgrade request before it is answered (its
# first WebSocket frames) before reading pauses.
UPGRADE_BUFFER = 64 * 1024

_UNLIMITED = 1 << 62
# Heads kept for replay are of at most this many bytes (request line and fields).
REPLAY_HEAD_BYTES = 2048

# Idle/reading states used by the timeout sweep.
_IDLE, _READING_HEAD, _BUSY = 0, 1, 2


class HTTP1Connection(HTTP1Response, WriteFlow, asyncio.Protocol):
    """One client connection speaking HTTP/1.0 and HTTP/1.1; the stream of its current
    exchange (the response side is HTTP1Response)."""

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
                    scanned = SCAN(data, *self._scan_limits) if SCAN is not None else None
                    if scanned is not None:
                        entry = scanned_replay(scanned)
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

    def _parse(self, data: bytes, record: int) -> None:
        """Feed llhttp; ``record``: where the head ends when the read began at a message
        boundary with a head not kept yet (0 otherwise), to keep it if it qualifies."""
        self._record = record
        if record:
            self._replayable = None
        begins = self._begins
        at_boundary = not self._head_started
        self._feed_body = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self._h2c is not None and self._state == _BUSY:  # Upgrade: h2c, checked
                self.transport.write(SWITCHING)  # type: ignore[union-attr]
                upgrade, self._h2c = self._h2c, None
                self._switch_to_h2(data[exc.args[0]:] if exc.args else b"", upgrade)
                return
            # The parser stops at an upgrade request. A WebSocket cycle may take the
            # connection over (upgrade_to) with the bytes that followed; any other request
            # is answered as plain HTTP, then the connection closes.
            self._upgrade = True
            self._done_reading = True
            self._upgrade_data = data[exc.args[0]:] if exc.args else b""
            last = self.pipeline[-1] if self.pipeline else self.cycle
            if last is not None:
                last.keep_alive = False
            if len(self._upgrade_data) > UPGRADE_BUFFER:
                self.pause_reading()
        except httptools.HttpParserCallbackError as exc:
            err = exc.__context__
            if isinstance(err, ProtocolError):
                self.send_error(err.status, err.reason)
            else:  # pragma: no cover - a bug in a callback
                logger.error("error while parsing request", exc_info=err)
                self.send_error(500, "Internal Server Error")
        except httptools.HttpParserInvalidMethodError:
            # A method llhttp does not know: 501 when it is a well-formed token (RFC 9110
            # §9.1), 400 for bytes that are no method at all. (Known where the message began
            # this read; else 400.)
            method = data.split(b" ", 1)[0] if at_boundary and self._begins == begins + 1 \
                else b""
            if 0 < len(method) <= 32 and is_token(method):
                self.send_error(501, "Method Not Implemented")
            else:
                self.send_error(400, "Invalid method")
        except httptools.HttpParserInvalidURLError:
            self.send_error(400, "Invalid request target")
        except httptools.HttpParserError as exc:
            if not self._done_reading:  # else: bytes after a closing request, ignored
                self.send_error(400, str(exc) or "Malformed request")
        else:
            if self._in_head:
                self._check_open_head(data, begins)
            elif record and self._replayable is not None and self._begins == begins + 1 \
                    and not self._head_started:
                self._record_replay(data, record)

    def _record_replay(self, data: bytes, end: int) -> None:
        """Keep the parse of a head for replay. ``data`` held exactly one whole message,
        which llhttp accepted: its head ``data[:end]`` (no Upgrade field, CONNECT or
        Transfer-Encoding; see on_headers_complete) and a Content-Length body to the end.
        The head's line breaks are all CRLF and its lines are the request line and one per
        field llhttp reported, so its first blank line (at ``end``) is where llhttp ended
        it; bytes equal to it parse the same, under the same limits (per server)."""
        entry = self._replayable
        head = entry.head  # type: ignore[union-attr]
        fields = head.fields
        if len(data) == end + 4 + head.length == end + 4 + self._body_bytes \
                and data.count(b"\r\n", 0, end) == fields \
                and data.count(b"\n", 0, end) == fields and data.count(b"\r", 0, end) == fields:
            self._keep_replay(data[:end], entry)  # type: ignore[arg-type]

    def _keep_replay(self, key: bytes, entry: Replay) -> None:
        """Keep ``entry`` for heads equal to ``key`` (a head seen before: see admit)."""
        replays = self._replays
        rotations = replays.rotations
        entries = replays.entries  # replays.keep(key, entry), inline
        if len(entries) >= replays.limit:
            replays.rotate()
        entries[key] = entry
        if self._trace:
            if replays.rotations != rotations:
                logger.log(TRACE, "%d heads kept for replay aged: the ones not replayed "
                           "since are dropped next", REPLAY_MAX)
            logger.log(TRACE, "%s - head kept for replay: %r", _who(self.client), key)

    def _replay(self, entry: Replay, data: bytes, start: int, how: str = "replayed") -> bool:
        """What llhttp's callbacks do for a whole message, for a head parsed before or read
        by SCAN (``how``: "scanned"); the per-message parse state, _url, _body_bytes...,
        is llhttp's alone: not touched. False when the head was refused."""
        if self._trace:
            logger.log(TRACE, "%s - head %s: %r", _who(self.client), how, data[:start - 4])
        try:
            head = entry.head
            self._head_complete(head, entry.method, entry.url, entry.version,
                                entry.keep_alive, False)
            if head.length:
                self._parsing.feed_body(data[start:])
        except ProtocolError as err:
            self.send_error(err.status, err.reason)
            return False
        except Exception:  # pragma: no cover - a bug in a cycle factory
            logger.exception("error while starting a request")
            self.send_error(500, "Internal Server Error")
            return False
        self.on_message_complete()
        return True

    def _check_open_head(self, data: bytes, begins: int) -> None:
        """httptools buffers a header line until its end: bound what one head may take even
        before any callback sees it."""
        if begins == self._begins:
            self._head_bytes += len(data)  # the whole read continued one open head
        else:
            # The open head is a suffix of this read that holds no blank line and follows
            # any body bytes parsed from it.
            start = data.rfind(b"\r\n\r\n")
            start = 0 if start < 0 else start + 4
            self._head_bytes = min(len(data) - start, len(data) - self._feed_body)
        config = self.config
        if self._head_bytes > config.limit_request_line + config.limit_request_header_size:
            self.send_error(431, "Request Header Fields Too Large")

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

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []  # (name, value) as received; analysed once the head is complete
        self._head_bytes = 0
        self._body_bytes = 0
        self._head_started = True
        self._in_head = True
        self._begins += 1
        if self._state != _READING_HEAD:
            self._state = _READING_HEAD
            self._state_since = self.state.clock

    def on_url(self, url: bytes) -> None:
        url = self._url = self._url + url
        limit = self.config.limit_request_line
        # The request line is "METHOD SP target SP HTTP/1.1": method + target + 10 bytes.
        if limit and len(url) + 32 > limit \
                and len(url) + len(self.parser.get_method()) + 10 > limit:
            raise ProtocolError(414, "Request-URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # The fields are kept as received; on_headers_complete checks and analyses the whole
        # list at once (its memory is bounded meanwhile by _check_open_head).
        if self._in_head:
            self._headers.append((name, value))
        else:
            self._trailer_field(name, value)

    def _trailer_field(self, name: bytes, value: bytes) -> None:
        """A chunked body's trailer field: held to the same limits, counted after the head's
        fields, and dropped (apps see the header section only)."""
        size = len(name) + len(value)
        self._trailer_bytes += size + 4
        self._trailer_fields += 1
        limits = self._limits
        if size > limits[0] or self._trailer_bytes > limits[1] \
                or self._trailer_fields > limits[2]:
            header_limit(size, self._trailer_bytes, limits)

    def on_headers_complete(self) -> None:
        # A client sends the same header list request after request: its analysis (limits,
        # lowered names, the fields that matter to framing) is cached whole, per server.
        raw = self._headers
        key = tuple(raw)
        heads = self._heads
        head = heads.entries.get(key)
        if head is None:
            head = heads.recall(key) if key in heads.previous else None
            if head is None:
                head = analyse_head(raw, self._limits, self._body_limit)
                # heads.keep(key, head), inline, for a list seen before (see admit)
                if head.size <= HEAD_CACHE_BYTES and heads.admit(key):
                    if len(heads.entries) >= heads.limit:
                        heads.rotate()
                    heads.entries[key] = head
        parser = self.parser
        # llhttp's own keep-alive verdict (it reads Proxy-Connection too, and whole tokens):
        # once it says no, it refuses any later byte, so the connection must end too.
        parser_keep_alive = parser.should_keep_alive()
        if head.plain and parser_keep_alive:
            # Without a Connection or Proxy-Connection field only HTTP/1.1 keeps alive
            # (llhttp admits 0.9, 1.0, 1.1 and 2.0): the common case skips get_http_version,
            # whose str.format cost ~2.3k instructions a request (callgrind).
            version = "1.1"
        else:
            version = parser.get_http_version()
            if version != "1.1" and version != "1.0":
                raise ProtocolError(505, "HTTP Version Not Supported")
        method = parser.get_method()
        if head.upgrade:
            if self._h2 is not None and self.scheme == "http" and not head.has_body \
                    and self.cycle is None and not self.pipeline and self._served == 0:
                self._h2c = h2c_upgrade(method, self._url, head.headers)
                if self._h2c is not None:
                    self._head_complete(head, method, self._url, version, parser_keep_alive,
                                        False, h2c=True)
                    return
            websocket = parser.should_upgrade() and _wants_websocket(head.headers)
        else:
            websocket = False
            if not head.chunked and self._record:  # a head to keep for replay (data_received)
                self._replayable = Replay(method, self._url, head, version, parser_keep_alive)
        self._head_complete(head, method, self._url, version, parser_keep_alive, websocket)

    def _head_complete(self, head: HeadInfo, method: bytes, url: bytes, version: str,
                       parser_keep_alive: bool, websocket: bool, h2c: bool = False) -> None:
        """A request's head is complete and parsed: check it and start its handler."""
        self._completing = method  # (a refusal of a HEAD request has no body)
        if head.error is not None:
            raise ProtocolError(*head.error)
        if head.host_error is not None:
            raise ProtocolError(*head.host_error)
        if version == "1.1":
            if head.host_missing:
                raise ProtocolError(400, "Missing Host header")
            keep_alive = head.keep_alive_11
            expect_continue = head.expect_continue
        else:
            if head.chunked:  # RFC 9112 §6.1: faulty framing from an HTTP/1.0 client
                raise ProtocolError(400, "Transfer-Encoding in a request of HTTP version 1.0")
            keep_alive = head.keep_alive_10
            expect_continue = False  # RFC 9110 §10.1.1: ignore it from HTTP/1.0
        if url[0] != 47:  # not origin form ("/..."): checked here, once per target form
            _check_target(method, url)
        if not parser_keep_alive:
            keep_alive = False
        self._in_head = False
        self._trailer_bytes = head.size  # trailer fields count on from the head's
        self._trailer_fields = head.fields
        if head.too_large:
            raise ProtocolError(413, "Request Entity Too Large")
        if self._draining:
            keep_alive = False  # the server is stopping: this request is the last
        if self._limit_concurrency and self.state.over_limit():
            raise ProtocolError(503, "Service Unavailable: too many connections")
        if h2c:  # checked like any head; stream 1 of the HTTP/2 connection answers it
            self._completing = None
            self._state = _BUSY
            return
        factory = self._http_factory
        if websocket and self._ws_factory is not None:
            factory = self._ws_factory
        if self._proxy_trust is not None:
            self.proxy = self._proxy_trust if head.forwarded else None
        cycle = factory(
            self, method, url, head.headers, version, keep_alive,
            head.has_body, expect_continue, head.te_trailers,
        )
        self._completing = None
        self._parsing = cycle
        self._state = _BUSY
        if self.cycle is None:
            self.cycle = cycle
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= PIPELINE_HIGH_WATER:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._feed_body += len(body)
        if self._body_bytes > self._body_limit > 0:
            raise ProtocolError(413, "Request Entity Too Large")
        cycle = self._parsing
        if cycle is not None:
            cycle.feed_body(body)

    def on_message_complete(self) -> None:
        cycle = self._parsing
        self._parsing = None
        self._head_started = False
        if cycle is not None:
            if not cycle.keep_alive:
                # Nothing after a request that ends the connection is read (llhttp would
                # call it an error; it is not the client's request to answer).
                self._done_reading = True
            if not cycle.body_complete:  # (a request without a body has nothing to end)
                cycle.end_body()

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


def _check_target(method: bytes, url: bytes) -> None:
    """A request target not in origin form (RFC 9112 §3.2): asterisk form for OPTIONS only,
    no tunnels (CONNECT, authority form: not implemented), an absolute form that parses
    (scheme and host)."""
    if method == b"CONNECT":
        raise ProtocolError(501, "CONNECT is not supported")
    if url == b"*":
        if method != b"OPTIONS":
            raise ProtocolError(400, "Asterisk-form request target is for OPTIONS only")
        return
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise ProtocolError(400, "Invalid request target") from None
    if not parsed.schema or not parsed.host:
        raise ProtocolError(400, "Invalid request target")


def _who(client: tuple[str, int] | None) -> str:
    """``host:port`` of a client for log lines ("-" when unknown, as for a Unix socket)."""
    return f"{client[0]}:{client[1]}" if client else "-"


def _wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


def _addr(info: Any) -> Any:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None

