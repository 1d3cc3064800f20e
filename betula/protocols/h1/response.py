"""The HTTP/1.1 side of the stream seam: a response's bytes (see ``protocols/stream.py``).

``HTTP1Response`` is mixed into ``HTTP1Connection``: one response at a time is written on an
HTTP/1 connection (pipelined requests wait their turn), so the connection is the stream of
its current exchange and its response state lives in the connection's slots, reset for each
response. Every HTTP/1 framing decision is here: the status line, the server's Date/Server
block, Content-Length or chunked or close, the last chunk, trailers (sent only to a client
that said ``TE: trailers``), 1xx responses, HEAD/204/304 without a body, and heads held back
so that head and first body leave in one write (the server flushes the held ones once per
loop turn, for the whole batch, when an app suspends in between); the ends of ASGI
responses and streamed chunks are held the same way, so a turn's responses leave together
(``hold_out``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ...cache import BoundedCache
from ...headers import NO_BODY_STATUS
from ..flow import WRITE_HIGH_WATER, WRITE_LOW_WATER
from .framing import CLOSE, LAST_CHUNK, STATUS_LINES, encode_headers, status_line

__all__ = ["HTTP1Response"]

logger = logging.getLogger("betula.error")

# body length -> "content-length: N\r\n\r\n" (the end of most heads)
_LENGTH_LINES: BoundedCache[int, bytes] = BoundedCache(4096)
# Head and body up to this size are joined into one buffer; larger bodies go out with
# writelines (one writev, no copy).
JOIN_LIMIT = 16 * 1024
# Streamed chunks held for the end of the loop turn (see _write_body): at most this many,
# each under JOIN_LIMIT; more, or a bigger one, and they go out at once.
HELD_CHUNKS = 64
# Chunk size for file bodies that go through the transport (TLS, or a full socket buffer).
FILE_CHUNK = 256 * 1024


class HTTP1Response:
    """Response framing for ``HTTP1Connection`` (its slots hold the state below)."""

    __slots__ = ()

    # Provided by HTTP1Connection, with write(), writelines(), close(), abort(), drain().
    cycle: Any
    shared: Any  # HTTP1Shared
    transport: Any
    _closed: bool
    # The current response (reset by start_response).
    held_head: bytes | None  # the head, waiting for the first body bytes to go with them
    held_out: list[bytes]  # streamed chunks, waiting for the end of the loop turn
    turn_paused: bool  # HELD_CHUNKS sent this turn: the app's send() waits for the next
    response_status: int
    response_bytes: int  # body bytes sent so far (for the access log)
    response_headers: Any  # the fields as the adapter gave them (for the access log)
    _r_length: int | None  # the app's Content-Length, or the length framing settled on
    _r_chunked: bool
    _r_no_body: bool  # HEAD, 204, 304: the head goes out, body bytes never do
    trailers_pending: bool  # trailers announced, to be sent (framing may rule them out)
    _r_trailer_block: bytes

    # -- the stream interface --------------------------------------------------------------
    def send_informational(self, status: int, headers: Any) -> None:
        """A 1xx response (100 Continue, 103 Early Hints...): out at once; HTTP/1.0 has
        none."""
        block = encode_headers(headers)[0] if headers else b""
        if self.cycle.http_version != "1.0" and not self._closed:
            self.write(status_line(status) + block + b"\r\n")

    def respond(self, status: int, headers: Any, body: bytes, reason: str | None = None
                ) -> None:
        """A whole response in one call, head and body in one write. A body that disagrees
        with the app's Content-Length is logged and the connection ends after it; one
        longer than that Content-Length is cut to it (what the header promised)."""
        block, length, flags, _trailer = encode_headers(headers)
        cycle = self.cycle
        self.response_status = status
        self.response_headers = headers
        size = len(body)
        if not flags and reason is None and cycle.keep_alive and not cycle.is_head \
                and cycle.http_version == "1.1" and status >= 200 \
                and status not in NO_BODY_STATUS and (length is None or length == size):
            # The usual response, on a short path: nothing after it reads the framing
            # state (the response is complete), so none of it is stored.
            head = (STATUS_LINES.entries.get(status) or status_line(status)) + \
                self.shared.default_headers + block + \
                (b"\r\n" if length is not None else
                 _LENGTH_LINES.entries.get(size) or _length_line(size))
            if not self._closed:  # write(), inline: once a request
                # (written at once, not held for the end of the turn as ASGI's ends are:
                # WSGI's responses come one by one from the app threads, each waking the
                # loop, so none would leave with others; holding only delayed them:
                # measured 0.93x on unique heads)
                if size <= JOIN_LIMIT:
                    self.transport.write(head + body)
                else:
                    self.transport.writelines((head, body))
            self.response_bytes = size
            return
        self.held_head = None
        self.trailers_pending = False
        self._r_chunked = False
        no_body = self._r_no_body = cycle.is_head or status in NO_BODY_STATUS or status < 200
        if flags & CLOSE:
            cycle.keep_alive = False
        if length is not None and length != size and not no_body:
            logger.error("response body length %d does not match its Content-Length %d",
                         size, length)
            cycle.keep_alive = False
            if size > length:
                body = body[:length]
                size = length
        self._r_length = length
        shared = self.shared
        head = (_line(status, reason) +
                (shared.default_blocks[(flags >> 1) & 3] if flags else shared.default_headers)
                + block + self._framing(size))
        if no_body:
            size = 0
            self.write(head)
        elif size <= JOIN_LIMIT:
            self.write(head + body)
        else:
            self.writelines((head, body))
        self.response_bytes = size

    def start_response(self, status: int, headers: Any, trailers: bool = False,
                       reason: str | None = None) -> None:
        """The final response's status and headers (validated here: RuntimeError for a bad
        name, value or Content-Length); ``reason``: a phrase of the app's own, where the
        protocol has one. The head is held for the first body bytes."""
        block, length, flags, trailer = encode_headers(headers)
        cycle = self.cycle
        self.response_status = status
        self.response_headers = headers
        self.response_bytes = 0
        self._r_no_body = cycle.is_head or status in NO_BODY_STATUS or status < 200
        if flags & CLOSE:
            cycle.keep_alive = False
        self._r_length = length
        self._r_chunked = False
        shared = self.shared
        defaults = shared.default_blocks[(flags >> 1) & 3] if flags else shared.default_headers
        if reason is None:
            head = (STATUS_LINES.entries.get(status) or status_line(status)) + defaults + block
        else:
            head = _line(status, reason) + defaults + block
        self.trailers_pending = trailers
        if trailers:
            self._r_trailer_block = b""
            if cycle.te_trailers and trailer:
                head += b"trailer: %b\r\n" % trailer
        self.held_head = head
        held = shared.held  # shared.hold(self), inline (once a request): flushed at the
        if not held:  # end of the loop turn if the app suspends
            shared.loop.call_soon(shared.flush_held)
        held.append(self)

    def send_data(self, body: bytes, end: bool) -> None:
        """Body bytes; ``end``: the last of them (trailers, when announced, still follow).
        RuntimeError when the body outgrows its Content-Length."""
        head = self.held_head
        if head is not None and end and not self._r_no_body and not self.trailers_pending:
            # The whole body in one message, right after the head (most responses): head
            # and body leave in one write.
            length = len(body)
            expected = self._r_length
            if expected is None or expected == length:
                self.held_head = None
                cycle = self.cycle
                if cycle.keep_alive and cycle.http_version == "1.1":  # _framing, inline
                    if expected is None:
                        self._r_length = length
                        head += _LENGTH_LINES.entries.get(length) or _length_line(length)
                    else:
                        head += b"\r\n"
                else:
                    head += self._framing(length)
                if length <= JOIN_LIMIT:
                    # held for the end of the turn (this connection is in shared.held since
                    # start_response held its head): hold_out, inline
                    out = self.held_out
                    out.append(head + body)
                    if len(out) >= HELD_CHUNKS:
                        self.flush_out()
                else:
                    self.writelines((head, body))
                self.response_bytes = length
                return
        self._write_body(body, end)

    def send_trailers(self, headers: Any, end: bool = True) -> None:
        """The trailer fields (gathered until ``end``: HTTP/1.1 sends the section at once);
        dropped without ``TE: trailers`` from the client (RFC 9110 §6.5)."""
        block = self._r_trailer_block + encode_headers(headers)[0]
        if not end:
            self._r_trailer_block = block
            return
        if self._r_chunked:
            self.write(b"0\r\n" + (block if self.cycle.te_trailers else b"") + b"\r\n")
        self.trailers_pending = False

    async def send_file(self, fd: int, offset: int, count: int, end: bool) -> int:
        """``count`` bytes of file ``fd`` from ``offset`` (sendfile where the transport
        allows); returns the bytes sent: fewer when the file is short or the client left
        (the connection then ends after this response)."""
        head = self.held_head
        if head is not None:
            self.held_head = None
            self.write(head + self._framing(None if not end else count))
        else:
            self.flush_out()  # the chunks streamed before the file go first
        if self._r_no_body:
            if end:
                self._finish_body()
            return count
        chunked = self._r_chunked and count
        if chunked:
            self.write(b"%x\r\n" % count)
        sent = await self.sendfile(fd, offset, count)
        self.response_bytes += sent
        if sent < count:
            self.cycle.keep_alive = False
            return sent
        if chunked:
            self.write(b"\r\n")
        if end:
            self._finish_body()
        return sent

    def flush_head(self) -> None:
        """The app suspended between start and body: send the head without knowing the body."""
        head = self.held_head
        if head is None or self._closed:
            return
        self.held_head = None
        self.write(head + self._framing(None))

    def flush_out(self) -> None:
        """What is held for the end of the turn (streamed chunks, ended responses) goes out
        now, in one write."""
        out = self.held_out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if not self._closed:
                self.transport.write(data)

    def flush_held(self) -> None:
        """The end of a loop turn: the held head, and the chunks sent since, go out; a
        stream paused for the turn may go on."""
        if self.held_head is not None:
            self.flush_head()
        elif self.held_out:
            self.flush_out()
        if self.turn_paused:
            self.end_turn_pause()

    def fail_response(self, status: int = 500, reason: str = "Internal Server Error") -> None:
        """Nothing of a response went out and none will: answer ``status`` and close."""
        self.response_status = status
        self.response_headers = None
        self.response_bytes = 0
        if not self._closed:
            self.write(self.shared.error_response(status, reason, self.cycle.is_head))
        self.close()

    def cut_short(self) -> None:
        """The response started and cannot be completed: what is held goes out, then the
        connection ends (the client sees a short body)."""
        self.flush_head()
        self.close()

    def end_for_shutdown(self) -> None:
        """A graceful stop ends a started, unfinished (streaming) response: cleanly, with
        the last chunk, where the framing allows; then the connection closes."""
        if self.held_head is None and self._r_chunked:
            self.write(LAST_CHUNK)
        self.close()

    async def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of file ``fd`` from ``offset``; return the bytes sent.

        Plain sockets use os.sendfile (zero copy) whenever the transport's own buffer is
        empty, so bytes never overtake what the transport still holds; when the kernel's
        socket buffer is full, one chunk goes through the transport to get its
        backpressure. TLS cannot use sendfile: chunks are read and written.
        """
        if self.held_out:  # (send_file's head write has sent them: for any other caller)
            self.flush_out()  # os.sendfile bypasses the transport: what is held goes first
        transport = self.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        use_sendfile = sock is not None and transport.get_extra_info("sslcontext") is None
        sent = 0
        if use_sendfile:
            # Waiting for "buffer empty" instead of "below low water" while we bypass it.
            transport.set_write_buffer_limits(high=0, low=0)
        try:
            while sent < count and not self._closed:
                if self.write_paused:
                    await self.drain()
                    continue
                if use_sendfile and transport.get_write_buffer_size() == 0:
                    try:
                        n = os.sendfile(sock.fileno(), fd, offset + sent, count - sent)
                    except BlockingIOError:
                        n = None
                    except OSError:
                        self.abort()
                        break
                    if n == 0:
                        break  # end of file before count
                    if n is not None:
                        sent += n
                        if sent >= count:
                            break
                data = os.pread(fd, min(FILE_CHUNK, count - sent), offset + sent)
                if not data:
                    break
                transport.write(data)
                sent += len(data)
        finally:
            if use_sendfile and not self._closed:
                transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        return sent

    # -- framing ---------------------------------------------------------------------------
    def _framing(self, body_len: int | None) -> bytes:
        """The framing headers and the blank line, decided with the first body bytes."""
        cycle = self.cycle
        if self.response_status in NO_BODY_STATUS:
            self._r_length = 0
            return b"\r\n" if cycle.keep_alive else b"connection: close\r\n\r\n"
        tail = b""
        trailers = self.trailers_pending and cycle.te_trailers
        if self._r_length is None:
            if body_len is not None and not trailers:
                self._r_length = body_len
                tail = b"content-length: %d\r\n" % body_len
            elif cycle.http_version == "1.0":
                cycle.keep_alive = False  # HTTP/1.0 has no chunking: the close ends the body
            else:
                self._r_chunked = True
                tail = b"transfer-encoding: chunked\r\n"
        elif trailers:
            self.trailers_pending = False  # Content-Length framing has no room for trailers
        if not cycle.keep_alive:
            return tail + b"connection: close\r\n\r\n"
        if cycle.http_version == "1.0":
            return tail + b"connection: keep-alive\r\n\r\n"
        return tail + b"\r\n"

    def _write_body(self, body: bytes, end: bool) -> None:
        head = self.held_head
        length = len(body)
        if head is not None:
            self.held_head = None
            head += self._framing(length if end else None)
            if self._r_no_body or not length:
                self.hold_out(head)
            elif self._r_chunked:
                frame = b"%b%x\r\n%b\r\n" % (head, length, body)
                if length >= JOIN_LIMIT:
                    self.write(frame)
                else:  # held, first streamed chunk or all (this connection is in shared.held)
                    self.held_out.append(frame)
            elif length <= JOIN_LIMIT:
                self.hold_out(head + body)
            else:
                self.writelines((head, body))
        elif length and not self._r_no_body:
            frame = b"%x\r\n%b\r\n" % (length, body) if self._r_chunked else body
            if end:
                if length < JOIN_LIMIT:
                    self.hold_out(frame)
                else:
                    self.write(frame)
            else:
                # A streamed chunk (an SSE event, a token) waits for the end of the loop
                # turn, with the others the app sends meanwhile: one write for them all
                # instead of a send() each (measured: bench "stream", 200 events a response).
                if self.hold_out(frame):
                    # Many in one turn: out now, and the app waits for the next turn (its
                    # send() sees write_paused), so that one stream does not hold the
                    # worker while others wait: each sends at most HELD_CHUNKS a turn.
                    self.turn_paused = self.write_paused = True
                elif length >= JOIN_LIMIT:
                    self.flush_out()  # a big one: out now
        self.response_bytes += length
        expected = self._r_length
        if expected is not None and self.response_bytes > expected and not self._r_no_body:
            self.cycle.keep_alive = False
            raise RuntimeError("response body longer than its Content-Length")
        if end:
            self._finish_body()

    def _finish_body(self) -> None:
        expected = self._r_length
        if expected is not None and self.response_bytes < expected and not self._r_no_body:
            logger.error("response body shorter than its Content-Length (%d < %d)",
                         self.response_bytes, expected)
            self.cycle.keep_alive = False
        if self.trailers_pending:
            return  # the last chunk goes with the trailers
        if self._r_chunked and not self._r_no_body:
            self.hold_out(LAST_CHUNK)

    def hold_out(self, data: bytes) -> bool:
        """A streamed chunk or the end of a response, held for the end of the loop turn
        (``flush_held``), when what this turn finished leaves one write after another. A
        send() costs ~20 us when the client's CPU sleeps (it wakes it), ~2 us when it is
        awake: written at once, each response of a busy worker woke its client; together,
        only the first does (bench/results: starlette, fastapi). Anything written after
        goes behind it (``write`` sends what is held first); the close, a file, an upgrade
        flush it. True when this was the HELD_CHUNKS-th held: all went out now."""
        out = self.held_out
        if not out:
            self.shared.hold(self)
        out.append(data)
        if len(out) >= HELD_CHUNKS:
            self.flush_out()
            return True
        return False


def _line(status: int, reason: str | None) -> bytes:
    """The status line, with the app's own reason phrase when it gave one (checked by the
    adapter: no CR, LF or NUL)."""
    if reason is None:
        return STATUS_LINES.entries.get(status) or status_line(status)
    return b"HTTP/1.1 %d %b\r\n" % (status, reason.encode("latin-1"))


def _length_line(size: int) -> bytes:
    return _LENGTH_LINES.recall(size) or _LENGTH_LINES.keep(
        size, b"content-length: %d\r\n\r\n" % size)
