"""Prometheus metrics (``--metrics-port``): counted by each server in plain Python, summed
by whoever serves ``/metrics``.

Why not prometheus_client's own counters on the request path: a labelled ``inc()`` takes
a lock and, in its multiprocess mode, writes a memory-mapped file, several microseconds a
request where a hello request costs about fifteen. Here a response costs two dict updates
and a few additions (``Recorder.response``); prometheus_client writes the text format.

How the numbers travel:

- Each server (a worker process, or each thread of ``--worker-mode thread``) keeps a
  ``Recorder``. Once a second, and when it stops, it writes its ``Snapshot`` as JSON to
  ``<metrics dir>/<pid>-<n>.json`` (written whole, then renamed: a reader never sees half).
- A master serves ``/metrics`` on its own listener (a thread), summing the files of its
  live workers and the last counts of the workers gone (``MasterMetrics``): a worker that
  exits is folded into the totals and its file removed, so counters never go backwards and
  no series of a dead worker is left behind. Gauges (in flight, open connections) are the
  live workers' only. The numbers are at most a second old.
- Without a master (one worker), the server serves ``/metrics`` itself from its recorder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import perf_counter
from typing import Any

__all__ = ["BUCKETS", "MasterMetrics", "MetricsServer", "Recorder", "Snapshot", "render"]

logger = logging.getLogger("betula.error")

# Latency histogram bounds, seconds (prometheus_client's defaults, from 1 ms).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
           5.0, 7.5, 10.0)
# Methods that get a label of their own; any other is counted as "other" (a client must
# not be able to create series at will).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
           "other")
# A response is counted at METHOD_BASE[method] + status in one flat list of ints (a list
# subscript is the cheapest count Python has: ~60 instructions, where a dict keyed by a
# (method, status) tuple costs ~700 a request, callgrind).
STATUSES = 1000
METHOD_BASE = {method: n * STATUSES for n, method in enumerate(METHODS)}
OTHER_BASE = METHOD_BASE["other"]
FIRST_BOUND = BUCKETS[0]
COUNTERS = ("bytes_in", "bytes_out", "ws_opened", "ws_messages_in", "ws_messages_out")
GAUGES = ("in_flight", "ws_open")


class Recorder:
    """One server's counters, updated by the adapters as responses complete."""

    __slots__ = ("requests", "buckets", "duration_sum", "bytes_in", "bytes_out", "ws_opened",
                 "ws_messages_in", "ws_messages_out")

    def __init__(self) -> None:
        self.requests = [0] * (len(METHODS) * STATUSES)  # at METHOD_BASE[method] + status
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bound (not cumulative), then +Inf
        self.duration_sum = 0.0
        self.bytes_in = 0  # request body bytes
        self.bytes_out = 0  # response body bytes
        self.ws_opened = 0
        self.ws_messages_in = 0
        self.ws_messages_out = 0

    def response(self, method: str, status: int, size: int, started: float) -> None:
        """A response completed (or failed: the server's own 500 counts too)."""
        duration = perf_counter() - started
        try:  # (a subscript, not .get(): ~200 instructions less a response)
            base = METHOD_BASE[method]
        except KeyError:
            base = OTHER_BASE
        self.requests[base + status] += 1
        if duration <= FIRST_BOUND:  # (most answers: no search)
            self.buckets[0] += 1
        else:
            self.buckets[bisect_left(BUCKETS, duration)] += 1
        self.duration_sum += duration
        self.bytes_out += size

    def refused(self, status: int) -> None:
        """The server answered a request itself, without an app (a bad request, a
        timeout): counted with the method "other", outside the latency histogram."""
        self.requests[OTHER_BASE + status] += 1

    def snapshot(self, state: Any) -> Snapshot:
        """The counters now, with the gauges read from ``state`` (a ``WorkerState``)."""
        snap = Snapshot()
        snap.requests = {f"{METHODS[index // STATUSES]} {index % STATUSES}": count
                         for index, count in enumerate(list(self.requests)) if count}
        snap.buckets = list(self.buckets)
        snap.duration_sum = self.duration_sum
        for name in ("bytes_in", "bytes_out", "ws_opened", "ws_messages_in", "ws_messages_out"):
            setattr(snap, name, getattr(self, name))
        connections: dict[str, int] = {}
        for conn in list(state.connections):
            kind = getattr(conn, "metrics_protocol", "http1")
            connections[kind] = connections.get(kind, 0) + 1
        snap.connections = connections
        active = list(state.active)
        snap.ws_open = sum(1 for exchange in active if getattr(exchange, "is_websocket", False))
        snap.in_flight = len(active) - snap.ws_open
        return snap


class Snapshot:
    """Counts of one server (or summed over several): what a worker's file holds."""

    __slots__ = ("requests", "buckets", "duration_sum", "bytes_in", "bytes_out", "ws_opened",
                 "ws_messages_in", "ws_messages_out", "connections", "in_flight", "ws_open",
                 "restarts")

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}  # "METHOD STATUS" -> count
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.bytes_in = self.bytes_out = 0
        self.ws_opened = self.ws_messages_in = self.ws_messages_out = 0
        self.connections: dict[str, int] = {}  # protocol -> open connections (gauge)
        self.in_flight = 0  # gauge
        self.ws_open = 0  # gauge
        self.restarts: dict[str, int] = {}  # reason -> worker exits (a master's own)

    def to_json(self) -> str:
        return json.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        snap = cls()
        for name in cls.__slots__:
            if name in data:
                setattr(snap, name, data[name])
        return snap

    def add(self, other: Snapshot, gauges: bool = True) -> None:
        """Add ``other``'s counts (and its gauges, for a live server)."""
        for key, count in other.requests.items():
            self.requests[key] = self.requests.get(key, 0) + count
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, count in other.restarts.items():
            self.restarts[reason] = self.restarts.get(reason, 0) + count
        if gauges:
            for kind, count in other.connections.items():
                self.connections[kind] = self.connections.get(kind, 0) + count
            self.in_flight += other.in_flight
            self.ws_open += other.ws_open


def render(snap: Snapshot, workers: int | None = None) -> bytes:
    """The Prometheus text format of ``snap`` (prometheus_client writes it)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    class _Collector:
        def collect(self) -> Iterable[Any]:
            requests = CounterMetricFamily("betula_requests", "Responses, by method and "
                                           "status.", labels=("method", "status"))
            for key, count in sorted(snap.requests.items()):
                method, _, status = key.partition(" ")
                requests.add_metric((method, status), count)
            yield requests
            cumulative, running = [], 0
            for bound, count in zip((*BUCKETS, float("inf")), snap.buckets, strict=True):
                running += count
                cumulative.append((_bound(bound), running))
            yield HistogramMetricFamily("betula_request_duration_seconds",
                                        "Time from the request's head to the end of its "
                                        "response.", buckets=cumulative,
                                        sum_value=snap.duration_sum)
            yield GaugeMetricFamily("betula_requests_in_flight", "Requests whose app is "
                                    "running.", value=snap.in_flight)
            connections = GaugeMetricFamily("betula_connections", "Open connections, by "
                                            "protocol.", labels=("protocol",))
            for kind in ("http1", "http2", "websocket"):
                connections.add_metric((kind,), snap.connections.get(kind, 0))
            yield connections
            yield GaugeMetricFamily("betula_websocket_connections", "Open WebSocket "
                                    "connections.", value=snap.ws_open)
            yield CounterMetricFamily("betula_websocket_connections_opened", "WebSocket "
                                      "connections accepted.", value=snap.ws_opened)
            messages = CounterMetricFamily("betula_websocket_messages", "WebSocket messages, "
                                           "by direction.", labels=("direction",))
            messages.add_metric(("in",), snap.ws_messages_in)
            messages.add_metric(("out",), snap.ws_messages_out)
            yield messages
            body = CounterMetricFamily("betula_body_bytes", "Request and response body "
                                       "bytes.", labels=("direction",))
            body.add_metric(("in",), snap.bytes_in)
            body.add_metric(("out",), snap.bytes_out)
            yield body
            restarts = CounterMetricFamily("betula_worker_restarts", "Workers that ended "
                                           "and were replaced, by reason.", labels=("reason",))
            for reason in ("crash", "timeout", "recycle", "reload"):
                restarts.add_metric((reason,), snap.restarts.get(reason, 0))
            yield restarts
            if workers is not None:
                yield GaugeMetricFamily("betula_workers", "Live worker processes.",
                                        value=workers)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())  # type: ignore[arg-type]
    return generate_latest(registry)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class SnapshotFile:
    """A server's file in the metrics directory, written whole then renamed."""

    _counter = 0
    _lock = threading.Lock()

    def __init__(self, directory: str) -> None:
        with SnapshotFile._lock:  # (thread mode: several servers in one process)
            SnapshotFile._counter += 1
            number = SnapshotFile._counter
        self.path = os.path.join(directory, f"{os.getpid()}-{number}.json")
        self._last = ""

    def write(self, snap: Snapshot) -> None:
        text = snap.to_json()
        if text == self._last:
            return
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(temporary, self.path)
            self._last = text
        except OSError as exc:
            logger.warning("cannot write the metrics file %s: %s", self.path, exc)


class MasterMetrics:
    """The master's side: live workers' files plus what the workers gone had counted."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.gone = Snapshot()  # counts of the workers that have exited, and restarts
        self.workers = 0
        self._lock = threading.Lock()

    def _files(self, pid: int | None = None) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        prefix = f"{pid}-" if pid is not None else ""
        return [os.path.join(self.directory, name) for name in names
                if name.endswith(".json") and name.startswith(prefix)]

    def worker_exited(self, pid: int, reason: str | None) -> None:
        """Fold an exited worker's last counts into the totals and remove its files;
        ``reason``: why it was replaced (None: not replaced, e.g. the server stops)."""
        with self._lock:
            for path in self._files(pid):
                try:
                    with open(path, encoding="utf-8") as fh:
                        self.gone.add(Snapshot.from_json(fh.read()), gauges=False)
                except (OSError, ValueError):
                    pass
                for stale in (path, path + ".tmp"):
                    try:
                        os.unlink(stale)
                    except OSError:
                        pass
            if reason is not None:
                self.gone.restarts[reason] = self.gone.restarts.get(reason, 0) + 1

    def total(self) -> Snapshot:
        with self._lock:
            total = Snapshot()
            total.add(self.gone, gauges=False)
            for path in self._files():
                try:
                    with open(path, encoding="utf-8") as fh:
                        total.add(Snapshot.from_json(fh.read()))
                except (OSError, ValueError):
                    continue  # (a worker that just exited: folded in by worker_exited)
            return total

    def render(self) -> bytes:
        return render(self.total(), self.workers)


class MetricsServer:
    """``/metrics`` on its own listener, served by a thread: ``page()`` gives the text."""

    def __init__(self, host: str, port: int, page: Callable[[], bytes]) -> None:
        content_type = "text/plain; version=0.0.4; charset=utf-8"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is here")
                    return
                try:
                    body = page()
                except Exception:  # noqa: BLE001 - a scrape must not kill the listener
                    logger.exception("metrics: cannot render /metrics")
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes are not requests of the app: not in the access log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="betula-metrics",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        logger.info("Metrics on http://%s:%d/metrics", self.httpd.server_address[0], self.port)
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def close_in_child(self) -> None:
        """In a forked worker: let go of the listener (the thread did not come along)."""
        self.httpd.socket.close()
