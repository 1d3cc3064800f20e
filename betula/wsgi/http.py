"""WSGI (PEP 3333) on a stream (``protocols/stream.py``): one ``WSGICycle`` per request.

The event loop parses and writes; the app runs in the worker's thread pool so one slow
request does not hold the others. The app thread checks what the app gives (status,
headers, chunk types, the body against its Content-Length) so a mistake is the app's
exception; the stream, on the loop, frames the response. Between the two:

- the request body goes through a ``BodyBuffer`` (the loop feeds, the app thread reads;
  reading from the socket pauses while the app is not reading);
- response parts go to the loop with ``call_soon_threadsafe``; while the client is not
  reading, the app thread waits (``_writable``) before handing over more, so a slow client
  slows the app down instead of filling memory;
- a response whose whole body is known at once (a list or tuple, or an iterator whose
  first block is all its Content-Length declares) crosses to the loop once and leaves in
  one write (``respond``: the stream's one call for a whole response).

The environ of a request head is built in ``environ.py``. The embedding API runs the same
cycle on a complete environ (``from_environ``) in its caller's thread (``run_inline``),
over an in-memory stream, with ``INLINE`` for the loop: what the app thread hands over
runs at once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterable
from io import BytesIO
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..cache import BoundedCache
from ..headers import NO_BODY_STATUS, response_length
from ..http_common import METHODS, method_name, phrase
from ..proxy import apply_to_environ
from .environ import (
    HEADER_ENTRIES,
    WSGI_ENVIRON,
    FileWrapper,
    connection_environ,
    environ_template,
    parse_target,
    remember_entries,
)
from .io import EMPTY_INPUT, BodyBuffer, InputStream

if TYPE_CHECKING:  # pragma: no cover
    from ..endpoint import Endpoint
    from ..protocols.stream import Stream
    from ..worker_state import WorkerState

__all__ = ["WSGICycle", "FileWrapper", "INLINE", "InlineLoop", "connection_environ",
           "is_wsgi_app"]

logger = logging.getLogger("betula.error")

BODY_HIGH_WATER = 256 * 1024
# A request body of up to this many bytes is received whole before the app runs, so a
# client that sends a head and then its body slowly (or never) holds no app thread; a
# larger body starts the app once this much has come, and is read as it arrives (the
# protocol's --timeout-request-body ends one that stalls). Not for `Expect: 100-continue`:
# there the body comes only once the app asks for it.
BODY_PREREAD = 64 * 1024
# Streamed chunks the app thread may hand over before the loop takes them (see _send).
BATCH_CHUNKS = 64
# The app's status ("200 OK"), once validated -> (code, its reason phrase when it is not the
# standard one, the response may have a body).
_STATUSES: BoundedCache[str, tuple[int, str | None, bool]] = BoundedCache(256)
_BAD_REASON = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class InlineLoop:
    """Where the loop-side calls of a cycle run when its app runs in the caller's thread
    over a stream that needs no event loop (the embedding API over ``MemoryStream``):
    what the app thread hands over with ``call_soon_threadsafe`` runs at once, in order,
    so the one adapter serves both."""

    __slots__ = ()

    @staticmethod
    def call_soon_threadsafe(callback: Any, *args: Any) -> None:
        callback(*args)

    @staticmethod
    def run_coroutine(coro: Any) -> Any:
        """Run a loop-side coroutine to its end; its stream must never suspend it."""
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        coro.close()
        raise RuntimeError("a stream without an event loop suspended")


INLINE = InlineLoop()


class WSGICycle:
    """One request/response exchange between an HTTP/1 connection and a WSGI app."""

    started = False
    response_started = False  # the head went out (loop side)
    response_complete = False
    disconnected = False
    task = None  # WSGI apps run in threads: nothing to cancel
    body_complete = True
    expect_continue = False
    # Defaults as class attributes: a request sets only what differs (fewer stores).
    body: BodyBuffer | None = None  # a body still arriving when the app starts
    _early: list[bytes] | None = None
    _early_size = 0
    _deferred = False  # started, waiting for the body before the app runs (BODY_PREREAD)
    _discarding = False
    _start_time = 0.0
    _log_headers: Any = None  # with an access log: the request's fields, its environ
    _log_environ: Any = None
    # What the connection reads of its request (see protocols/stream.py).
    is_head = False
    te_trailers = False
    # App-thread response state. _writable (an Event) exists once a response streams.
    _writable: threading.Event | None = None
    # Chunks handed over and not yet taken by the loop (_send, _loop_write), under
    # _batch_lock; _batch_posted: a _loop_write is on its way to take them.
    _batch: list[tuple[tuple[int, str | None] | None, bytes]]
    _batch_lock: threading.Lock
    _batch_posted = False
    _status_line: str | None = None
    _headers: list[tuple[str, str]] | None = None
    _head_sent = False  # app-thread view: the head was handed to the loop
    _length: int | None = None  # the app's Content-Length (app thread)
    _no_body = False
    _written = 0
    raw_target = b""
    log_errors = True  # False (embedded): an app's error is kept in app_error, not logged
    app_error: BaseException | None = None  # the app's error, when not logged

    def __init__(self, state: WorkerState, endpoint: Endpoint, conn: Stream,
                 method: bytes, url: bytes,
                 headers: tuple[tuple[bytes, bytes], ...], http_version: str, keep_alive: bool,
                 has_body: bool, expect_continue: bool, te_trailers: bool) -> None:
        self.state = state
        self.endpoint = endpoint
        self.conn = conn
        self.loop = state.loop
        self.keep_alive = keep_alive
        self.http_version = http_version
        self.method = method = METHODS.entries.get(method) or method_name(method)
        self.is_head = method == "HEAD"
        # What a request reads before it writes (see from_environ).
        self._status_line = None
        self._head_sent = False
        self.disconnected = False
        self.response_complete = False
        self.raw_target = url
        if has_body:
            # Body bytes that arrive before the app runs wait in a plain list (the loop is
            # their only user then). A body complete by the time the app starts (most
            # requests) is read from a BytesIO: no lock, no wake-up of the loop to resume
            # reading. Only a body still arriving gets the thread-safe BodyBuffer, with flow
            # control.
            self.body_complete = False
            self._early = []
            self._deferred = False  # (an attribute of its own: read on every body event)
        if expect_continue:
            self.expect_continue = True
        if state.timed:  # an access log or metrics
            self._start_time = perf_counter()
        template = conn.iface_cache
        if template is None or template.endpoint is not endpoint:
            template = conn.iface_cache = environ_template(conn, state, endpoint)
        # The environ: the connection's part, the target's, the headers'. In one C call
        # where it can (see environ.py: WSGI_ENVIRON)...
        environ = WSGI_ENVIRON(template.environ, url, headers, method) if template.direct \
            else None
        if environ is not None:
            self.environ = environ
            self._path_info = environ["PATH_INFO"]
        else:  # ...else in Python, with what a target and a header list give kept
            targets = template.targets
            target = targets.entries.get(url) or parse_target(targets, url, template.strips)
            self._path_info = target[0]
            environ = self.environ = template.environ | target[1]
            environ["REQUEST_METHOD"] = method
            # Clients repeat the same header list request after request (the protocol
            # then hands the same tuple): its environ entries are worked out once.
            known = HEADER_ENTRIES.entries.get(id(headers))
            if known is None or known[0] is not headers:
                known = remember_entries(headers)
            environ.update(known[1])
        if http_version != "1.1":
            environ["SERVER_PROTOCOL"] = "HTTP/" + http_version
        if conn.proxy is not None:  # a trusted proxy: the client, scheme, host it says
            apply_to_environ(environ, headers, conn.proxy)
        if state.access_log is not None:  # its atoms: request headers, environ
            self._log_headers = headers
            self._log_environ = environ

    @classmethod
    def from_environ(cls, state: WorkerState, endpoint: Endpoint | None, conn: Stream,
                     environ: dict[str, Any], loop: Any = None,
                     log_errors: bool = True) -> WSGICycle:
        """A cycle for a complete environ built elsewhere (the embedding API's
        ``build_environ``), with its own ``wsgi.input``, not from a request head. ``loop``:
        where the loop-side calls run (default the state's loop; ``INLINE``: at once,
        with the app run by ``run_inline`` in the caller's thread). ``log_errors`` False:
        the app's error is only kept in ``app_error`` (the embedding API raises it)."""
        # The attributes in __init__'s order (instances share their attribute keys).
        cycle = cls.__new__(cls)
        cycle.state = state
        cycle.endpoint = endpoint  # type: ignore[assignment]
        cycle.conn = conn
        cycle.loop = state.loop if loop is None else loop
        cycle.keep_alive = True
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        cycle.http_version = "1.1" if protocol == "HTTP/1.1" or protocol[:5] != "HTTP/" \
            else protocol[5:]
        method = cycle.method = environ["REQUEST_METHOD"]
        cycle.is_head = method == "HEAD"
        # What the exchange reads before it writes, as the instance's own: on 3.11 a
        # class-level default read through an instance is not specialised (~270
        # instructions a read, ~55 for the instance's own; a store ~80: callgrind).
        cycle._status_line = None
        cycle._head_sent = False
        cycle.disconnected = False
        cycle.response_complete = False
        cycle.body = None
        cycle.app_error = None
        path_info = environ.get("PATH_INFO", "")
        if state.timed:
            query = environ.get("QUERY_STRING", "")
            cycle.raw_target = (environ.get("SCRIPT_NAME", "") + path_info +
                                ("?" + query if query else "")).encode("latin-1")
            cycle._start_time = perf_counter()
            cycle._log_environ = environ
        cycle._path_info = path_info
        environ["wsgi.early_hints"] = cycle._early_hints
        cycle.environ = environ
        if not log_errors:
            cycle.log_errors = False
        return cycle

    # -- events from the connection (event loop thread) ---------------------------------
    def feed_body(self, data: bytes) -> None:
        metrics = self.state.metrics
        if metrics is not None:
            metrics.bytes_in += len(data)
        early = self._early
        if early is not None:  # the app has not started: kept for it
            early.append(data)
            self._early_size += len(data)
            if self._early_size >= BODY_PREREAD and self._deferred:
                self.start()
            elif self._early_size > BODY_HIGH_WATER:
                self.conn.pause_reading()  # resumed once the app drains it or is done
        elif self.body is not None and not self._discarding and not self.disconnected:
            if self.body.feed(data):
                self.conn.pause_reading()

    def end_body(self) -> None:
        self.body_complete = True
        if self._deferred:
            self.start()  # the whole body is here: the app reads it from memory
        elif self._discarding:
            self.conn.body_finished(self)
        elif self.body is not None:
            self.body.end()

    def connection_lost(self) -> None:
        self.disconnected = True
        self._deferred = False  # an app still waiting for its body never runs
        self._early = None
        if self.body is not None:
            self.body.abort()
        if self._writable is not None:
            self._writable.set()  # a thread waiting for the client to read: stop waiting

    def server_shutdown(self) -> None:
        """Graceful stop: the app finishes its response (the protocol ends the connection
        after the last request it has received): nothing to do here."""

    def discard_body(self) -> None:
        self._discarding = True
        self._early = None

    def _body_drained(self) -> None:  # app thread
        self.loop.call_soon_threadsafe(self.conn.resume_reading)

    def _first_wait(self) -> None:  # app thread: the app wants a body not yet sent
        self.loop.call_soon_threadsafe(self._send_continue)

    def _send_continue(self) -> None:
        if not self.response_started and not self.disconnected:
            self.conn.send_informational(100, ())

    # -- running the app ------------------------------------------------------------------
    def start(self) -> None:
        """Run the app; or, while a small body is still arriving, once it has come (called
        again then, by feed_body or end_body)."""
        self.started = True
        early = self._early
        if early is not None:
            if not self.body_complete and not self.expect_continue \
                    and self._early_size < BODY_PREREAD:
                self._deferred = True  # the app runs once the body (or BODY_PREREAD) is here
                return
            self._deferred = False
        state = self.state
        state.active.add(self)
        state.requests += 1
        if early is None:
            stream: Any = EMPTY_INPUT  # no body: one shared, stateless empty stream
        else:
            if self.body_complete:
                stream = BytesIO(b"".join(early))  # (one chunk: join returns it, no copy)
            else:
                self.body = BodyBuffer(BODY_HIGH_WATER, self._body_drained,
                                       self._first_wait if self.expect_continue else None,
                                       early)
                stream = InputStream(self.body)
            self._early = None
        environ = self.environ
        environ["wsgi.input"] = stream
        environ["wsgi.early_hints"] = self._early_hints
        state.pool.submit(self._run)

    def run_inline(self, app: Any) -> None:
        """Run ``app`` now, in the calling thread, on the environ as it is (a cycle made
        by ``from_environ``); with the ``INLINE`` loop the loop-side calls run here too."""
        self.started = True
        self._run(app)

    def _run(self, app: Any = None) -> None:  # app thread
        result: Any = None
        try:
            try:
                result = (self.endpoint.app if app is None else app)(
                    self.environ, self._start_response)
                if type(result) is list and self._status_line is not None \
                        and not self._head_sent:
                    self._finish_whole(b"".join(result))  # the common case, in one go
                else:
                    self._serve(result)
            finally:
                if type(result) is not list:  # (a list has no close(): skip the lookup)
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
        except BaseException as exc:  # noqa: BLE001 - reported to the client and the log
            self._failed(exc)
        finally:
            # A set operation is atomic under the GIL: no extra wake-up of the loop for it.
            self.state.active.discard(self)
            # The environ and the body buffer hold bound methods of this cycle
            # (wsgi.early_hints, the buffer's callbacks): let go of them so the request is
            # freed by reference counting, not left as a reference cycle for the garbage
            # collector (~5k instructions a request, and collections hold the GIL).
            self.environ = None
            if self.state.access_log is not None:  # its copy, without the bound method
                kept = dict(self._log_environ)
                kept.pop("wsgi.early_hints", None)
                self._log_environ = kept
            if self.body is not None:
                self.body.release()

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status_line is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str or (status not in _STATUSES.entries
                                        and _STATUSES.recall(status) is None):  # seen: valid
            _STATUSES.keep(status, _parse_status(status))
        if not isinstance(headers, list):
            raise TypeError("response headers must be a list of (name, value) tuples")
        self._status_line = status
        self._headers = headers
        return self._write

    def _serve(self, result: Iterable[bytes]) -> None:
        if isinstance(result, FileWrapper) and result.fileno() is not None \
                and not self._head_sent:
            self._serve_file(result)
            return
        if isinstance(result, (list, tuple)) and not self._head_sent:
            body = b"".join(result)
            if self._status_line is None:
                raise RuntimeError("the WSGI app returned without calling start_response")
            self._finish_whole(body)
            return
        iterator = iter(result)
        for chunk in iterator:
            if self.disconnected:
                return
            if not chunk:
                continue
            if self._head_sent or type(chunk) is not bytes or self._status_line is None:
                self._write(chunk)
                continue
            head = self._check_head()  # (a bad head is the app's error: a 500, nothing sent)
            if self._length == len(chunk) and not self._no_body:
                # The first block is the whole body the app's Content-Length declares (a
                # Flask or Django response: an iterator of one block): it leaves as a whole
                # response, one hand-over to the loop and one write, as a list does. It is
                # handed over now, not held for the iterator's end (PEP 3333: no block is
                # delayed). Whatever follows, yielded or through write(), is over the length.
                self._written = len(chunk)
                self._finish_whole(chunk, head)
                for chunk in iterator:
                    if chunk:  # (not sent: the client has the response it was promised)
                        raise RuntimeError("response body longer than its Content-Length")
                return
            self._write_checked(head, chunk)
        if self._status_line is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        if not self._head_sent:
            self._finish_whole(b"")
        else:
            self._finish_stream()

    # -- response, app thread side -----------------------------------------------------
    # The app thread checks what the app gave (status, headers, chunk types, the body
    # against its Content-Length) so a mistake is the app's exception, and hands the rest
    # to the loop, where the connection's stream frames it (protocols/h1/response.py).
    def _check_head(self) -> tuple[int, str | None]:
        """Validate the app's status and headers (RuntimeError: a bad header); note what
        the app thread needs of them: the Content-Length, whether a body may follow."""
        code, reason, may_have_body = _STATUSES.lookup(self._status_line) or \
            _parse_status(self._status_line)  # type: ignore[arg-type]
        length = response_length(self._headers or ())
        self._no_body = self.is_head or not may_have_body
        self._length = 0 if code in NO_BODY_STATUS else length
        return code, reason

    def _write(self, data: bytes) -> None:
        """The write() callable and each chunk of the iterable: sent in order, now."""
        if self._status_line is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"WSGI body chunks must be bytes, got {type(data).__name__}")
        if self.disconnected:
            raise OSError("client disconnected")
        if not data:
            return
        self._write_checked(None if self._head_sent else self._check_head(), data)

    def _write_checked(self, head: tuple[int, str | None] | None, data: bytes) -> None:
        """A chunk whose type and head (``head``: the first chunk's) were checked: counted
        against the app's Content-Length and handed over."""
        if not self._no_body:
            self._written += len(data)
            if self._length is not None and self._written > self._length:
                raise RuntimeError("response body longer than its Content-Length")
        self._head_sent = True
        self._send(head, bytes(data))

    def _send(self, head: tuple[int, str | None] | None, data: bytes) -> None:
        """Hand a chunk to the loop (with the head, for the first). Chunks the loop has not
        taken yet wait in one batch, taken whole by one loop call (the loop writes a turn's
        chunks in one write): a generator of small chunks costs one hand-over per batch,
        not a thread switch per chunk. The thread waits while the client is not reading,
        and when BATCH_CHUNKS wait untaken."""
        writable = self._writable
        if writable is None:
            writable = self._writable = threading.Event()
            writable.set()
            self._batch_lock = threading.Lock()
            self._batch = []
        if not writable.is_set():
            writable.wait()
        if self.disconnected:
            raise OSError("client disconnected")
        with self._batch_lock:
            batch = self._batch
            batch.append((head, data))
            post = not self._batch_posted
            self._batch_posted = True
            if len(batch) >= BATCH_CHUNKS:
                writable.clear()  # (under the lock: the loop's set() comes after it)
        if post:
            self.loop.call_soon_threadsafe(self._loop_write)

    def _finish_whole(self, body: bytes, head: tuple[int, str | None] | None = None) -> None:
        # The whole response crosses to the loop at once: the stream checks its headers
        # there (a bad one is reported as the app's error) and frames it. ``head``: the
        # status as _check_head read it, when it has.
        if head is None:
            code, reason, _may_have_body = _STATUSES.entries.get(self._status_line) or \
                _STATUSES.recall(self._status_line) or _parse_status(self._status_line)
        else:
            code, reason = head
        self._head_sent = True
        self.loop.call_soon_threadsafe(self._loop_respond, code, reason, body)

    def _finish_stream(self) -> None:
        self.loop.call_soon_threadsafe(self._loop_finish)

    def _serve_file(self, wrapper: FileWrapper) -> None:
        fd = wrapper.fileno()
        assert fd is not None
        # PEP 3333: from the file's current position; a buffered file object's position
        # (tell) is behind the descriptor's after a read.
        tell = getattr(wrapper.filelike, "tell", None)
        offset = tell() if tell is not None else os.lseek(fd, 0, os.SEEK_CUR)
        size = os.fstat(fd).st_size - offset
        if self._status_line is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        code, reason = self._check_head()
        declared = self._length
        count = size if declared is None else min(size, declared)
        self._head_sent = True
        coro = self._loop_sendfile(code, reason, fd, offset, count)
        if self.loop.__class__ is InlineLoop:
            self.loop.run_coroutine(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _early_hints(self, headers: list[tuple[str, str]]) -> None:
        """``wsgi.early_hints``: a 103 with these headers, before the response."""
        if self._head_sent:
            return
        response_length(headers)  # a bad header is the app's error, here
        self.loop.call_soon_threadsafe(self._loop_informational, 103, headers)

    def _failed(self, exc: BaseException) -> None:
        if self.disconnected and isinstance(exc, OSError):
            return
        self._report(exc)
        self.loop.call_soon_threadsafe(self._loop_error, self._head_sent)

    def _report(self, exc: BaseException) -> None:
        if self.log_errors:
            logger.error("Exception in WSGI application", exc_info=exc)
        else:
            self.app_error = exc  # (kept only here: a traceback holds the request's frames)

    # -- response, event loop side ---------------------------------------------------------
    def _loop_informational(self, status: int, headers: list[tuple[str, str]]) -> None:
        if not self.disconnected and not self.response_started:
            self.conn.send_informational(status, headers)

    def _loop_write(self) -> None:
        """Take the app thread's batch of chunks (see _send) and send them."""
        with self._batch_lock:
            batch, self._batch = self._batch, []
            self._batch_posted = False
        self.response_started = True
        writable = self._writable
        assert writable is not None
        if self.disconnected:
            writable.set()
            return
        conn = self.conn
        for head, data in batch:
            if head is not None:
                conn.start_response(head[0], self._headers, False, head[1])
            conn.send_data(data, False)
        if conn.write_paused:
            writable.clear()
            conn.add_drain_callback(writable.set)
        else:
            writable.set()

    def _loop_respond(self, code: int, reason: str | None, body: bytes) -> None:
        conn = self.conn
        if not self.disconnected:
            try:
                conn.respond(code, self._headers, body, reason)
            except RuntimeError as exc:  # a header the app gave is not valid
                self._report(exc)
                self._loop_error(False)
                return
        self.response_started = True
        if not self.response_complete:  # _complete(), inline: once a request
            self.response_complete = True
            if self.state.timed:  # an access log or metrics
                self._observed(code, conn.response_bytes, conn.response_headers)
            conn.cycle_done(self)

    def _loop_finish(self) -> None:
        if not self.disconnected:
            self.conn.send_data(b"", True)
        self._complete()

    async def _loop_sendfile(self, code: int, reason: str | None, fd: int, offset: int,
                             count: int) -> None:
        self.response_started = True
        if self.disconnected:
            return
        conn = self.conn
        conn.start_response(code, self._headers, False, reason)
        await conn.send_file(fd, offset, count, True)
        self._complete()

    def _loop_error(self, head_sent: bool) -> None:
        if self.response_complete:
            return
        if head_sent or self.response_started:
            self.response_complete = True
            self.conn.cut_short()
            self.conn.cycle_done(self)
            return
        self.response_started = True
        self.response_complete = True
        if self.state.timed and not self.disconnected:
            self._observed(500, 0, None)
        self.conn.fail_response(500)

    def _complete(self) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        if self.state.timed:
            conn = self.conn
            self._observed(conn.response_status, conn.response_bytes, conn.response_headers)
        self.conn.cycle_done(self)

    def _observed(self, status: int, size: int, headers: Any) -> None:
        """The response is over: its access-log line and its metrics."""
        state = self.state
        access = state.access_log
        if access is not None:
            access.log(self.scope, status, size, self._start_time, headers, self._log_environ)
        metrics = state.metrics
        if metrics is not None:
            # (a HEAD response's body, counted by the stream against its length, is not sent)
            metrics.response(self.method, status, 0 if self.is_head else size,
                             self._start_time)

    @property
    def scope(self) -> dict[str, Any]:
        """What the access log needs, in the ASGI scope's shape (the client as the
        environ has it: a trusted proxy's)."""
        environ = self._log_environ
        client = self.conn.client
        if environ is not None and "REMOTE_ADDR" in environ:
            port = environ.get("REMOTE_PORT", "0")
            client = (environ["REMOTE_ADDR"], int(port) if str(port).isdigit() else 0)
        return {
            "client": client,
            "headers": self._log_headers,
            "method": self.method,
            "raw_path": self.raw_target.partition(b"?")[0],
            "query_string": self.raw_target.partition(b"?")[2],
            "http_version": self.http_version,
            "path": self._path_info,
        }


def _parse_status(status: Any) -> tuple[int, str | None, bool]:
    """A WSGI status ("200 OK") checked: (code, its reason phrase when not the standard
    one, a body may follow). ValueError for anything else (in the app's thread)."""
    if not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit() \
            or status[3] != " " or _BAD_REASON.search(status):
        raise ValueError(f"invalid WSGI status {status!r}: expected e.g. '200 OK'")
    code = int(status[:3])
    reason = status[4:]
    if reason == phrase(code):
        reason = None  # the standard line, cached
    return code, reason, code >= 200 and code not in NO_BODY_STATUS


def is_wsgi_app(app: Any) -> bool | None:
    """True for a WSGI callable, False for ASGI, None when it cannot be told."""
    import inspect

    if inspect.isfunction(app) or inspect.ismethod(app):
        func = app
    else:
        func = type(app).__call__
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(app):
        return False
    try:
        params = [p for p in inspect.signature(app).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    if len(params) == 2:
        return True
    if len(params) == 3:
        return False
    return None
