"""Reading requests for ``HTTP1Connection``: llhttp's callbacks (through httptools), the
replay of heads parsed before and of heads the C scanner read (``head.py``), and the checks
a complete head passes before its handler starts.

``HTTP1Parsing`` is a mixin of the connection, as ``HTTP1Response`` is its response side:
no state of its own (the connection's slots hold it, declared below), so the connection
stays one object a request, and each side is a module of one concern.
"""

from __future__ import annotations

import logging
from typing import Any

import httptools

from ...headers import is_token
from ...http_common import ProtocolError
from ...logs import TRACE
from .h2c import SWITCHING, h2c_upgrade
from .head import HEAD_CACHE_BYTES, HeadInfo, Replay, analyse_head, header_limit
from .shared import REPLAY_MAX

__all__ = ["HTTP1Parsing", "PIPELINE_HIGH_WATER", "UPGRADE_BUFFER"]

logger = logging.getLogger("betula.error")

# Pipelined requests parsed ahead of the one being answered before reading pauses.
PIPELINE_HIGH_WATER = 16
# Bytes kept from a client that sends past an upgrade request before it is answered (its
# first WebSocket frames) before reading pauses.
UPGRADE_BUFFER = 64 * 1024

# Idle/reading states used by the timeout sweep.
_IDLE, _READING_HEAD, _BUSY = 0, 1, 2


class HTTP1Parsing:
    """Request parsing for ``HTTP1Connection`` (its slots hold the state below)."""

    __slots__ = ()

    # Provided by HTTP1Connection (with send_error, pause_reading, _switch_to_h2).
    config: Any
    state: Any  # WorkerState
    parser: Any  # httptools.HttpRequestParser
    transport: Any
    client: Any
    scheme: str
    cycle: Any
    pipeline: Any
    proxy: Any
    _proxy_trust: Any
    _http_factory: Any
    _ws_factory: Any
    _h2: Any
    _h2c: Any
    _replays: Any
    _heads: Any
    _limits: Any
    _body_limit: int
    _limit_concurrency: int
    _trace: bool
    _served: int
    _draining: bool
    # Per message.
    _url: bytes
    _headers: list[tuple[bytes, bytes]]
    _head_bytes: int
    _body_bytes: int
    _feed_body: int
    _head_started: bool
    _in_head: bool
    _begins: int
    _state: int
    _state_since: float
    _record: int
    _replayable: Replay | None
    _parsing: Any
    _completing: bytes | None
    _trailer_bytes: int
    _trailer_fields: int
    _upgrade: bool
    _upgrade_data: bytes
    _done_reading: bool

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
                self.write(SWITCHING)  # (behind what earlier responses hold)
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


def _wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


def _who(client: tuple[str, int] | None) -> str:
    """``host:port`` of a client for log lines ("-" when unknown, as for a Unix socket)."""
    return f"{client[0]}:{client[1]}" if client else "-"
