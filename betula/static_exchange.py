"""The handler of a request for a ``--static`` file: the ``StreamHandler`` of
``protocols/stream.py`` that the router gives the protocols for a path under a static
prefix, in place of an adapter's. It asks ``static.answer`` what to send and sends it on
the event loop (no app, no thread): a small body with its head in one ``respond``, a
larger one with ``start_response`` and ``send_file`` (sendfile on a plain HTTP/1.1
socket) in a task. The request body, if any, is dropped. The response goes to the access
log like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .http_common import METHODS, method_name, split_target
from .proxy import apply_to_scope
from .static import Answer, StaticDir, answer

if TYPE_CHECKING:  # pragma: no cover
    from .protocols.stream import Stream
    from .worker_state import WorkerState

__all__ = ["StaticExchange"]

logger = logging.getLogger("betula.error")


class StaticExchange:
    """One request for a file under a ``--static`` prefix."""

    __slots__ = ("state", "folder", "conn", "method", "url", "headers", "http_version",
                 "is_head", "te_trailers", "keep_alive", "started", "body_complete",
                 "response_started", "response_complete", "disconnected", "task",
                 "_discarding", "_start_time")

    def __init__(self, state: WorkerState, folder: StaticDir, conn: Stream, method: bytes,
                 url: bytes, headers: tuple[tuple[bytes, bytes], ...], http_version: str,
                 keep_alive: bool, has_body: bool, expect_continue: bool,
                 te_trailers: bool) -> None:
        self.state = state
        self.folder = folder
        self.conn = conn
        self.method = method
        self.url = url
        self.headers = headers
        self.http_version = http_version
        self.is_head = method == b"HEAD"
        self.te_trailers = te_trailers
        self.keep_alive = keep_alive
        self.started = False
        self.body_complete = not has_body
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.task: asyncio.Task[None] | None = None
        self._discarding = False
        self._start_time = perf_counter() if state.access_log is not None else 0.0

    # -- events from the protocol --------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        pass  # a body sent with GET or HEAD (or another method, refused) is not read

    def end_body(self) -> None:
        self.body_complete = True
        if self._discarding:
            self.conn.body_finished(self)

    def discard_body(self) -> None:
        self._discarding = True

    def connection_lost(self) -> None:
        self.disconnected = True

    def server_shutdown(self) -> None:
        pass  # a file being sent completes (within --timeout-graceful-shutdown)

    # -- answering -----------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        state = self.state
        state.requests += 1
        try:
            raw_path, query = split_target(self.url)
            plan = answer(self.folder, self.method, raw_path, query, self.headers)
        except Exception as exc:  # a bug of ours: answered like an app's error
            logger.error("Exception serving a static file", exc_info=exc)
            self._fail()
            return
        if plan.fd < 0:
            self.response_started = True
            self.conn.respond(plan.status, plan.headers, plan.body)
            self._complete(plan.status)
            return
        state.active.add(self)  # (the graceful stop waits for it; a stuck dump names it)
        self.task = state.new_task(self._send_file(plan))

    async def _send_file(self, plan: Answer) -> None:
        conn = self.conn
        try:
            self.response_started = True
            conn.start_response(plan.status, plan.headers)
            sent = await conn.send_file(plan.fd, plan.offset, plan.count, True)
        except Exception as exc:
            logger.error("Exception sending a static file", exc_info=exc)
            sent = -1
        finally:
            os.close(plan.fd)
            self.state.active.discard(self)
        if sent == plan.count:
            self._complete(plan.status)
            return
        # The client left, or the file shrank under the send: the response cannot complete.
        self.response_complete = True
        conn.cut_short()
        conn.cycle_done(self)

    def _complete(self, status: int) -> None:
        self.response_complete = True
        access = self.state.access_log
        if access is not None:
            conn = self.conn
            access.log(self.scope, status, conn.response_bytes, self._start_time,
                       conn.response_headers)
        self.conn.cycle_done(self)

    def _fail(self) -> None:
        self.response_started = self.response_complete = True
        access = self.state.access_log
        if access is not None:
            access.log(self.scope, 500, 0, self._start_time)
        self.conn.fail_response(500)

    @property
    def scope(self) -> dict[str, Any]:
        """The request as an ASGI-like scope: for the access log and a stuck worker's dump
        (made only when asked for)."""
        raw_path, query = split_target(self.url)
        conn = self.conn
        scope = {"type": "http", "http_version": self.http_version, "scheme": conn.scheme,
                 "method": METHODS.entries.get(self.method) or method_name(self.method),
                 "path": raw_path.decode("latin-1"), "raw_path": raw_path,
                 "query_string": query, "headers": list(self.headers),
                 "client": conn.client, "server": conn.sockname}
        if conn.proxy is not None:
            apply_to_scope(scope, conn.proxy)
        return scope
