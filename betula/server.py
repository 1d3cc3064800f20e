"""A worker: one event loop, its listeners, its connections, and a graceful stop."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
import signal
import socket
import ssl
import time
from typing import Any

from . import __version__
from .access_log import AccessLog
from .asgi.lifespan import LifespanFailure, LifespanManager
from .endpoint import Endpoint
from .hooks import call_hook
from .listeners import describe
from .logs import reopen_log_files
from .metrics import MetricsServer, Recorder, SnapshotFile, render
from .protocols.h1 import HTTP1Connection, HTTP1Shared
from .protocols.h2 import H2Shared, HTTP2Connection
from .proxy_listener import ProxyProtocolListener
from .routing import Router
from .worker_state import WorkerState
from .wsgi.pool import ThreadPool

__all__ = ["Endpoint", "Server", "Worker", "new_event_loop"]

logger = logging.getLogger("betula.error")


def _rss_mib() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def log_in_flight(state: WorkerState) -> None:
    """SIGUSR2 (from a master about to kill a stuck worker): say what it is stuck on."""
    if not state.active:
        logger.error("Worker %d stuck with no request in flight (blocked outside an app?)",
                     os.getpid())
    for cycle in list(state.active):
        scope = getattr(cycle, "scope", None) or {}
        logger.error("Worker %d stuck on request: %s %s", os.getpid(), scope.get("method", "?"),
                     scope.get("path", "?"))


class Worker:
    """The parts of one worker, wired (data flows one way): the worker's bookkeeping
    (``WorkerState``), the apps and which one answers (``Router``), what its HTTP/1
    connections share (``HTTP1Shared``) and the WSGI thread pool it owns."""

    __slots__ = ("state", "router", "h1", "h2", "pool", "connection")

    def __init__(self, config: Any, endpoints: list[Endpoint] | Any,
                 loop: asyncio.AbstractEventLoop, interface: str = "asgi") -> None:
        if not isinstance(endpoints, list):  # a bare app (tools, benchmarks)
            endpoints = [Endpoint(endpoints, interface, "app", "", config.root_path)]
        self.pool = None
        if any(e.interface == "wsgi" for e in endpoints):
            self.pool = ThreadPool(config.threads, batch=config.threads_batch)
        access = AccessLog.wanted(config.access_log, config.access_log_format,
                                  config.access_log_json)
        metrics = Recorder() if config.metrics_port else None
        self.state = WorkerState(config, loop, access_log=access, metrics=metrics,
                                 pool=self.pool)
        self.router = Router(endpoints, self.state, websockets=config.ws != "none",
                             root_path=config.root_path, static=config.static)
        self.h1 = HTTP1Shared(config, loop)
        # HTTP/2 on the same listeners (a connection starts as HTTP/1 and hands over).
        websocket = self.router.websocket
        self.h2 = H2Shared(config, loop, websocket is not None) if config.http2 else None
        h2 = functools.partial(HTTP2Connection, self.h2, self.state, self.router.http,
                               websocket) if self.h2 is not None else None
        # The listeners' protocol factory: a new HTTP/1 connection.
        self.connection = functools.partial(HTTP1Connection, self.h1, self.state,
                                            self.router.http, self.router.websocket, h2)


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
                 notify: Any = None, master_pid: int = 0, signals: bool = True) -> None:
        self.config = config
        # False: a worker thread (--worker-mode thread): the process's main thread takes
        # the signals and stops this server with request_stop().
        self.signals = signals
        # notify(b"R") once serving, b"H" every tick (heartbeat), b"X" to ask to be
        # recycled: the master's side of the pipe (None without a master).
        self.notify = notify
        # The master's pid, taken before it forked this worker (0: no master): a worker
        # that finds another parent was orphaned (the master SIGKILLed) and stops.
        self.master_pid = master_pid
        self.endpoints = endpoints
        self.ssl_context = ssl_context
        self.sockets = sockets
        self.exit_code = 0
        self._stop: asyncio.Event | None = None
        self._force = False
        self._servers: list[Any] = []  # asyncio Servers, or ProxyProtocolListeners
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = 0  # request_stop() from another thread: 1 graceful, 2 now
        self.worker_state: WorkerState | None = None  # once serving (read for SIGUSR2)
        self._metrics_file: SnapshotFile | None = None  # under a master, with metrics

    def request_stop(self, force: bool = False) -> None:
        """Stop serving, from any thread: gracefully, or (``force``) at once."""
        self._stop_requested = max(self._stop_requested, 2 if force else 1)
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._take_stop_request)
            except RuntimeError:  # the loop has closed: the server is done
                pass

    def _take_stop_request(self) -> None:
        if self._stop_requested and self._stop is not None:
            if self._stop_requested > 1:
                self._force = True
            self._stop.set()

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
        self._loop = loop
        self._take_stop_request()  # (one asked for before the loop existed)
        worker = Worker(config, self.endpoints, loop)
        state = self.worker_state = worker.state
        if self.signals:
            self._install_signals(loop)
        if self.notify is not None and self.signals:
            # A plain handler, not the loop's: it must run while the loop is blocked.
            signal.signal(signal.SIGUSR2, lambda *_: log_in_flight(state))
        exporter = None
        if state.metrics is not None:
            if self.notify is None:  # no master to sum workers: this server answers /metrics
                recorder = state.metrics
                try:
                    exporter = MetricsServer(config.host, config.metrics_port,
                                             lambda: render(recorder.snapshot(state))).start()
                except OSError as exc:
                    logger.error("cannot listen for metrics on %s:%d: %s", config.host,
                                 config.metrics_port, exc.strerror)
                    return 1
            else:  # the master reads this file (metrics.py)
                self._metrics_file = SnapshotFile(config.metrics_dir)
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

        if config.gc_freeze:
            # What the app built at import and startup lives as long as the worker: without
            # this, every full collection walks it again (with heads that never repeat, 44
            # full collections in 8 s took 400 ms, up to 14 ms each: the p99; frozen, 69 ms
            # and 2.6 ms at most). Garbage first, so none of it is kept forever.
            gc.collect()
            gc.freeze()
        ssl_ctx = self.ssl_context
        ticker = loop.create_task(self._tick(worker))
        try:
            factory = worker.connection
            for sock in self.sockets:
                if config.proxy_protocol != "off":  # the PROXY header comes before TLS
                    server = ProxyProtocolListener(loop, sock, factory, ssl_ctx, config)
                else:
                    server = await loop.create_server(factory, sock=sock, ssl=ssl_ctx,
                                                      backlog=config.backlog)
                self._servers.append(server)
                logger.info("Listening on %s", describe(sock, ssl_ctx is not None))
            threads = (f", {config.threads} WSGI threads" if worker.pool is not None
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
            await self._shutdown(worker)
            for lifespan in reversed(started):
                await lifespan.shutdown()
            if self._metrics_file is not None:  # the last counts, for the master to keep
                self._metrics_file.write(state.metrics.snapshot(state))
            if exporter is not None:
                exporter.close()
        logger.info("Stopped")
        return self.exit_code

    async def _tick(self, worker: Worker) -> None:
        """Once per tick: refresh the Date header, enforce idle and header-read timeouts,
        heartbeat to the master, and ask to be recycled past the request or memory limit."""
        config = self.config
        state = worker.state
        interval = min(1.0, config.timeout_keep_alive / 4, config.timeout_request_header / 4,
                       config.timeout_request_body / 4)
        last_date = 0
        loop = asyncio.get_running_loop()
        max_requests = config.limit_max_requests
        if max_requests and config.limit_max_requests_jitter:
            max_requests += random.randint(0, config.limit_max_requests_jitter)
        recycling = False
        # A worker outlives its master only by accident (the master was SIGKILLed): it
        # would go on serving with nobody to stop or replace it. Seen by the parent pid.
        master = self.master_pid
        while True:
            # Wake at the turn of each second too, so Date is never more than a tick stale.
            await asyncio.sleep(min(interval, 1.0005 - time.time() % 1.0))
            second = int(time.time())
            if second != last_date:
                last_date = second
                worker.h1.refresh_date()
                if worker.h2 is not None:
                    worker.h2.refresh_date()
                if self.notify is not None:
                    self.notify(b"H")
                if self._metrics_file is not None:
                    self._metrics_file.write(state.metrics.snapshot(state))
                if master and os.getppid() != master:
                    logger.warning("Worker %d: the master (pid %d) is gone: stopping",
                                   os.getpid(), master)
                    master = 0  # (said once)
                    assert self._stop is not None
                    self._stop.set()
                if not recycling:
                    reason = self._recycle_reason(state, max_requests)
                    if reason:
                        recycling = True
                        self._recycle(reason)
            now = state.clock = loop.time()
            for conn in list(state.connections):
                conn.check_timeouts(now)

    def _recycle_reason(self, state: WorkerState, max_requests: int) -> str | None:
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

    async def _shutdown(self, worker: Worker) -> None:
        state = worker.state
        for server in self._servers:
            server.close()
        # A connection the loop accepted just before the listeners closed has its
        # connection_made still queued (uvloop and asyncio schedule it after the accept): let
        # it run, so the connection is counted and drained below, not dropped unanswered when
        # the loop ends (seen once in ~1000 requests of a rolling restart under load).
        await asyncio.sleep(0)
        told: set[Any] = set()  # the connections told to drain
        for conn in list(state.connections):
            conn.shutdown()
            told.add(conn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        while (state.connections or state.active) and loop.time() < deadline \
                and not self._force:
            await asyncio.sleep(0.05)
            now = loop.time()
            for conn in list(state.connections):
                if conn not in told:  # made since (a TLS handshake that has just finished)
                    conn.shutdown()
                    told.add(conn)
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
        if worker.pool is not None:
            # Threads cannot be interrupted; ones still running an app end with the process.
            worker.pool.shutdown()

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
        loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)  # logrotate's

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
