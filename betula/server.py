"""A worker: one event loop, its listeners, its connections, and a graceful stop."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import ssl
import time
from email.utils import formatdate
from time import perf_counter
from typing import Any
from urllib.parse import unquote_to_bytes

from . import __version__
from .asgi.http import HTTPCycle
from .asgi.lifespan import LifespanFailure, LifespanManager
from .asgi.websocket import WebSocketCycle
from .cache import BoundedCache
from .hooks import call_hook
from .http_common import client_label, request_target, split_target
from .listeners import describe
from .protocols.http1 import HEAD_CACHE_MAX, REPLAY_MAX, HTTP1Connection
from .wsgi.http import WSGICycle
from .wsgi.pool import ThreadPool

__all__ = ["Server", "ServerState"]

logger = logging.getLogger("betula.error")
access_logger = logging.getLogger("betula.access")


def _rss_mib() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _log_in_flight(state: ServerState) -> None:
    """SIGUSR1 (from a master about to kill a stuck worker): say what it is stuck on."""
    if not state.active:
        logger.error("Worker %d stuck with no request in flight (blocked outside an app?)",
                     os.getpid())
    for cycle in list(state.active):
        scope = getattr(cycle, "scope", None) or {}
        logger.error("Worker %d stuck on request: %s %s", os.getpid(), scope.get("method", "?"),
                     scope.get("path", "?"))


class Endpoint:
    """One app the worker serves: the whole server, or one ``--mount`` prefix."""

    def __init__(self, app: Any, interface: str, name: str, prefix: str = "",
                 root_path: str = "") -> None:
        self.app = app
        self.interface = interface  # "asgi" or "wsgi"
        self.name = name
        self.prefix = "" if prefix == "/" else prefix  # matched against the request path
        self.path_prefix = root_path  # --root-path: prepended to ASGI paths (proxy stripped)
        self.root_path = root_path + self.prefix  # ASGI root_path, WSGI SCRIPT_NAME
        self.lifespan_state: dict[str, Any] | None = {}

    how = "configured"  # how the interface was decided: "auto-detected", "assumed", "configured"

    def describe(self, mounted: bool = False) -> str:
        where = f" at {self.prefix or '/'}" if mounted else ""
        return f"{self.name}{where} ({self.interface.upper()}, {self.how})"


async def _not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"404 Not Found: no app is mounted at "
                + scope["raw_path"] + b"\n"})


class ServerState:
    """What every connection of a worker shares: settings, apps, bookkeeping, cached headers."""

    def __init__(self, config: Any, endpoints: list[Endpoint] | Any,
                 loop: asyncio.AbstractEventLoop, interface: str = "asgi") -> None:
        if not isinstance(endpoints, list):  # a bare app (tools, tests)
            endpoints = [Endpoint(endpoints, interface, "app", "", config.root_path)]
        self.config = config
        self.endpoints = endpoints
        self.loop = loop
        if loop.get_task_factory() is None:
            # A Task with a name given: without one, each Task formats "Task-<n>" for
            # itself (~1.5k instructions a request on 3.11, callgrind).
            self.new_task = functools.partial(asyncio.Task, loop=loop, name="betula-request")
        else:  # pragma: no cover - someone installed a task factory: respect it
            self.new_task = loop.create_task
        self.wsgi_threads = config.threads
        self.wsgi_executor: ThreadPool | None = None
        self.connections: set[HTTP1Connection] = set()
        # Cycles whose app is running (the response may be done: background work).
        self.active: set[Any] = set()
        self.requests = 0  # started, for --limit-max-requests
        self.default_headers = b""
        self.access_log = bool(config.access_log) and access_logger.isEnabledFor(logging.INFO)
        self.held_heads: list[Any] = []
        # Request heads analysed by HTTP/1 connections (header list -> analysis).
        self.head_cache: BoundedCache[tuple[tuple[bytes, bytes], ...], tuple[Any, ...]] = \
            BoundedCache(HEAD_CACHE_MAX)
        # http1 data_received
        self.replay_cache: BoundedCache[bytes, tuple[Any, ...]] = BoundedCache(REPLAY_MAX)
        # A coarse clock for connection timeouts, advanced by the server's tick.
        self.clock = loop.time()
        self.refresh_date()
        if any(e.interface == "wsgi" for e in endpoints):
            self.wsgi_executor = ThreadPool(config.threads, batch=config.threads_batch)
        # (prefix, HTTP cycle factory, WebSocket cycle factory) per endpoint. A WebSocket
        # request to a WSGI app (or to no app) is answered as plain HTTP by its HTTP cycle.
        routes = [(e.prefix.encode("utf-8"), self._factory(e), self._ws_factory(e))
                  for e in endpoints]
        self.ws_cycle_factory: Any = None
        if len(endpoints) == 1 and not endpoints[0].prefix:
            self.cycle_factory = routes[0][1]
            if config.ws != "none":
                self.ws_cycle_factory = routes[0][2]
        else:
            # Longest prefix first; a prefix matches exactly or when followed by "/".
            routes.sort(key=lambda item: len(item[0]), reverse=True)
            self._routes = routes
            not_found = self._factory(
                Endpoint(_not_found, "asgi", "not-found", "", config.root_path))
            self._fallback = (b"", not_found, not_found)
            self.cycle_factory = self._route
            if config.ws != "none":
                self.ws_cycle_factory = self._route_ws

    def _factory(self, endpoint: Endpoint) -> Any:
        cycle = WSGICycle if endpoint.interface == "wsgi" else HTTPCycle
        return functools.partial(cycle, self, endpoint)

    def _ws_factory(self, endpoint: Endpoint) -> Any:
        if endpoint.interface == "wsgi":
            return self._factory(endpoint)
        return functools.partial(WebSocketCycle, self, endpoint)

    def _match(self, url: bytes) -> tuple[bytes, Any, Any]:
        path = split_target(url)[0]
        if path.find(b"%") >= 0:  # prefixes match the decoded path, as the app sees it
            path = unquote_to_bytes(path)
        for route in self._routes:
            prefix = route[0]
            if not prefix or path == prefix or path.startswith(prefix + b"/"):
                return route
        return self._fallback

    def _route(self, conn: Any, method: bytes, url: bytes, *rest: Any) -> Any:
        return self._match(url)[1](conn, method, url, *rest)

    def _route_ws(self, conn: Any, method: bytes, url: bytes, *rest: Any) -> Any:
        return self._match(url)[2](conn, method, url, *rest)

    def flush_heads(self) -> None:
        """Send the heads of responses whose app suspended between start and body (a cycle
        holds its head back so head and first body leave in one write); once per loop turn
        for the whole batch."""
        held, self.held_heads = self.held_heads, []
        for conn in held:
            if conn.held_head is not None:  # most sent theirs with the body: no call for them
                conn.flush_head()

    def refresh_date(self) -> None:
        config = self.config
        date = (b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n"
                if config.date_header else b"")
        server = b"server: betula\r\n" if config.server_header else b""
        # Indexed by encode_headers' HAS_DATE | HAS_SERVER bits: what the app left to us.
        self.default_blocks = (date + server, server, date, b"")
        self.default_headers = self.default_blocks[0]

    def default_headers_for(self, flags: int) -> bytes:
        return self.default_blocks[(flags >> 1) & 3]

    def over_limit(self) -> bool:
        limit = self.config.limit_concurrency
        return limit > 0 and len(self.connections) + len(self.active) > limit

    def running_tasks(self) -> list[asyncio.Task[Any]]:
        return [c.task for c in self.active if c.task is not None and not c.task.done()]

    def access(self, cycle: Any, status: int, size: int) -> None:
        if not self.access_log:
            return
        scope = cycle.scope
        duration = (perf_counter() - cycle._start_time) * 1000.0
        access_logger.info('%s - "%s %s HTTP/%s" %d %d %.2fms', client_label(scope),
                           scope["method"], request_target(scope), scope["http_version"],
                           status, size, duration)

    def log_protocol_error(self, conn: HTTP1Connection, status: int, reason: str) -> None:
        client = conn.client
        who = f"{client[0]}:{client[1]}" if client else "-"
        logger.info("%s - bad request answered %d: %s", who, status, reason)


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop"


class Server:
    """Serve ``app`` on ``sockets`` until told to stop. ``run()`` returns the exit status."""

    def __init__(self, config: Any, endpoints: list[Endpoint], sockets: list[socket.socket],
                 ssl_context: ssl.SSLContext | None = None,
                 notify: Any = None) -> None:
        self.config = config
        # notify(b"R") once serving, b"H" every tick (heartbeat), b"X" to ask to be
        # recycled: the master's side of the pipe (None without a master).
        self.notify = notify
        self.endpoints = endpoints
        self.ssl_context = ssl_context
        self.sockets = sockets
        self.exit_code = 0
        self._stop: asyncio.Event | None = None
        self._force = False
        self._servers: list[asyncio.base_events.Server] = []

    def run(self) -> int:
        loop, loop_name = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self.serve(loop_name))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def serve(self, loop_name: str = "asyncio") -> int:
        loop = asyncio.get_running_loop()
        config = self.config
        self._stop = asyncio.Event()
        self._install_signals(loop)
        state = ServerState(config, self.endpoints, loop)
        if self.notify is not None:
            # A plain handler, not the loop's: it must run while the loop is blocked.
            signal.signal(signal.SIGUSR1, lambda *_: _log_in_flight(state))
        started: list[LifespanManager] = []
        try:
            for endpoint in self.endpoints:
                if endpoint.interface == "wsgi":  # WSGI has no lifespan protocol
                    continue
                lifespan = LifespanManager(endpoint.app, config.lifespan,
                                           config.lifespan_startup_timeout,
                                           config.lifespan_shutdown_timeout, endpoint.name)
                await lifespan.startup()  # each ASGI app gets its own lifespan and state
                started.append(lifespan)
                endpoint.lifespan_state = lifespan.state
        except LifespanFailure as exc:
            logger.error("%s", exc)
            logger.error("application startup failed: exiting")
            for lifespan in reversed(started):
                await lifespan.shutdown()
            return 3
        if self._stop.is_set():  # stopped during startup
            for lifespan in reversed(started):
                await lifespan.shutdown()
            return self.exit_code

        ssl_ctx = self.ssl_context
        ticker = loop.create_task(self._tick(state))
        try:
            factory = functools.partial(HTTP1Connection, state)
            for sock in self.sockets:
                server = await loop.create_server(factory, sock=sock, ssl=ssl_ctx,
                                                  backlog=config.backlog)
                self._servers.append(server)
                logger.info("Listening on %s", describe(sock, ssl_ctx is not None))
            threads = (f", {config.threads} WSGI threads" if state.wsgi_executor is not None
                       else "")
            mounted = len(self.endpoints) > 1 or bool(self.endpoints[0].prefix)
            served = ", ".join(e.describe(mounted) for e in self.endpoints)
            logger.info("Betula %s serving %s [%s%s, httptools, pid %d]", __version__, served,
                        loop_name, threads, os.getpid())
            if self.notify is not None:
                self.notify(b"R")
            else:
                call_hook(config, "when_ready")  # a master calls it once all workers serve
            await self._stop.wait()
        finally:
            ticker.cancel()
            await self._shutdown(state)
            for lifespan in reversed(started):
                await lifespan.shutdown()
        logger.info("Stopped")
        return self.exit_code

    async def _tick(self, state: ServerState) -> None:
        """Once per tick: refresh the Date header, enforce idle and header-read timeouts,
        heartbeat to the master, and ask to be recycled past the request or memory limit."""
        config = self.config
        interval = min(1.0, config.timeout_keep_alive / 4, config.timeout_request_header / 4)
        last_date = 0
        loop = asyncio.get_running_loop()
        max_requests = config.limit_max_requests
        if max_requests and config.limit_max_requests_jitter:
            max_requests += random.randint(0, config.limit_max_requests_jitter)
        recycling = False
        while True:
            # Wake at the turn of each second too, so Date is never more than a tick stale.
            await asyncio.sleep(min(interval, 1.0005 - time.time() % 1.0))
            second = int(time.time())
            if second != last_date:
                last_date = second
                state.refresh_date()
                if self.notify is not None:
                    self.notify(b"H")
                if not recycling:
                    reason = self._recycle_reason(state, max_requests)
                    if reason:
                        recycling = True
                        self._recycle(reason)
            now = state.clock = loop.time()
            for conn in list(state.connections):
                conn.check_timeouts(now)

    def _recycle_reason(self, state: ServerState, max_requests: int) -> str | None:
        if max_requests and state.requests >= max_requests:
            return f"served {state.requests} requests (limit {max_requests})"
        limit = self.config.limit_max_rss
        if limit:
            rss = _rss_mib()
            if rss is not None and rss > limit:
                return f"memory {rss:.0f} MiB over --limit-max-rss {limit}"
        return None

    def _recycle(self, reason: str) -> None:
        if self.notify is not None:
            logger.info("Worker %d %s: asking the master for a replacement", os.getpid(),
                        reason)
            self.notify(b"X")  # the master starts a new worker, then stops this one
        else:
            logger.info("%s: stopping (no master to replace this process)", reason)
            assert self._stop is not None
            self._stop.set()

    async def _shutdown(self, state: ServerState) -> None:
        for server in self._servers:
            server.close()
        for conn in list(state.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        while (state.connections or state.active) and loop.time() < deadline \
                and not self._force:
            await asyncio.sleep(0.05)
            now = loop.time()
            for conn in list(state.connections):
                conn.check_timeouts(now)  # the tick has stopped: keep closing drained ones
        if state.connections or state.active:
            if not self._force:
                logger.warning("graceful shutdown timed out: closing %d connection(s)",
                               len(state.connections))
            tasks = state.running_tasks()
            for task in tasks:
                task.cancel()
            for conn in list(state.connections):
                conn.abort()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
        if state.wsgi_executor is not None:
            # Threads cannot be interrupted; ones still running an app end with the process.
            state.wsgi_executor.shutdown()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
        if self.notify is not None:
            # A worker under a master: Ctrl-C reaches the whole process group, and the
            # master turns it into SIGTERM for each worker (a second one, into SIGKILL).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            stop_signals = (signal.SIGTERM,)
        for sig in stop_signals:
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGQUIT, self._on_quit)

    def _on_stop_signal(self, sig: int) -> None:
        assert self._stop is not None
        if self._stop.is_set():
            if sig == signal.SIGINT:
                logger.warning("second interrupt: stopping now")
                self._force = True
            return
        logger.info("Received %s: shutting down gracefully", signal.Signals(sig).name)
        self._stop.set()

    def _on_quit(self) -> None:
        assert self._stop is not None
        logger.info("Received SIGQUIT: stopping now")
        self._force = True
        self._stop.set()
