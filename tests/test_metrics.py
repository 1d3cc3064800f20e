"""--metrics-port: Prometheus text at /metrics on its own listener, summed over the workers
of a master (counts exact), read with prometheus_client's own parser; workers that exit
(recycled, crashed, rolled by HUP) keep their counts and leave no file behind."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import run_cli

ASGI = "tests.apps.metrics_apps:app"
WSGI = "tests.apps.metrics_apps:wsgi"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def until(port: int, check, timeout: float = 15.0):
    """Scrape until ``check(samples)`` holds (workers write their counts once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def each_on_a_new_connection(server, requests) -> None:
    """Each request on its own connection, so the kernel spreads them over the workers."""
    for method, path, body in requests:
        with httpx.Client(timeout=10) as client:
            client.request(method, server.base_url + path, content=body)


def start(serve, app, *args, env=None):
    port = free_port()
    server = serve(app, "--metrics-port", str(port), "--no-access-log", *args, env=env)
    assert server.wait_for_log(r"Metrics on http://127\.0\.0\.1:\d+/metrics", 10), server.log
    return server, port


@pytest.mark.parametrize("app", [ASGI, WSGI])
@pytest.mark.parametrize("workers", ["1", "2"], ids=["single", "master"])
def test_counts_are_exact_over_all_workers(serve, app, workers):
    server, port = start(serve, app, "--workers", workers)
    if workers == "2":
        assert server.wait_for_log(r"Booting worker 2", 10)
    requests = [("GET", "/hello", None)] * 7 + [("GET", "/missing", None)] * 3 + \
        [("POST", "/echo", b"x" * 1000)] * 2 + [("HEAD", "/hello", None)]
    each_on_a_new_connection(server, requests)

    def done(samples):
        return value(samples, "betula_request_duration_seconds_count") == len(requests)

    samples = until(port, done)
    assert value(samples, "betula_requests_total", method="GET", status="200") == 7
    assert value(samples, "betula_requests_total", method="GET", status="404") == 3
    assert value(samples, "betula_requests_total", method="POST", status="200") == 2
    assert value(samples, "betula_requests_total", method="HEAD", status="200") == 1
    assert value(samples, "betula_request_duration_seconds_count") == 13
    assert value(samples, "betula_request_duration_seconds_bucket", le="+Inf") == 13
    buckets = sorted((float(labels[0][1]), v) for (name, labels), v in samples.items()
                     if name == "betula_request_duration_seconds_bucket")
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False))  # cumulative
    assert value(samples, "betula_body_bytes_total", direction="in") == 2000
    # 7 + 3 bodies of 5 bytes, 2 echoes of 1000; HEAD sends none
    assert value(samples, "betula_body_bytes_total", direction="out") == 50 + 2000
    assert value(samples, "betula_requests_in_flight") == 0
    if workers == "2":
        assert value(samples, "betula_workers") == 2


def test_other_methods_and_the_servers_own_refusals_count_as_other(serve):
    server, port = start(serve, ASGI)
    # BREW: not a method Betula takes (the server answers 501 itself); PROPFIND: an app's
    # (WebDAV), counted as "other", as any method without a label of its own.
    each_on_a_new_connection(server, [("BREW", "/hello", None), ("PROPFIND", "/hello", None),
                                      ("GET", "/hello", None)])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")  # a bad Host: 400
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    samples = until(port, lambda s: value(s, "betula_requests_total", method="other",
                                          status="400") == 1)
    assert value(samples, "betula_requests_total", method="other", status="400") == 1
    assert value(samples, "betula_requests_total", method="other", status="501") == 1
    assert value(samples, "betula_requests_total", method="other", status="200") == 1
    assert value(samples, "betula_requests_total", method="GET", status="200") == 1
    # the server's refusals have no app time: outside the latency histogram
    assert value(samples, "betula_request_duration_seconds_count") == 2
    assert not any(dict(labels).get("method") in ("BREW", "PROPFIND") for _, labels in samples)


def test_in_flight_and_open_connections(serve, tmp_path):
    release = tmp_path / "release"
    server, port = start(serve, ASGI, "--workers", "2", env={"METRICS_RELEASE": str(release)})
    slow = threading.Thread(target=lambda: httpx.get(server.base_url + "/slow", timeout=30))
    slow.start()
    try:
        with httpx.Client(http1=False, http2=True, timeout=10) as h2:
            assert h2.get(server.base_url + "/hello").http_version == "HTTP/2"
            samples = until(port, lambda s: value(s, "betula_requests_in_flight") == 1
                            and value(s, "betula_connections", protocol="http2") == 1)
            assert value(samples, "betula_requests_in_flight") == 1
            assert value(samples, "betula_connections", protocol="http2") == 1
            assert value(samples, "betula_connections", protocol="http1") >= 1  # the slow one
    finally:
        release.write_text("go")
        slow.join(30)
    samples = until(port, lambda s: value(s, "betula_requests_in_flight") == 0
                    and value(s, "betula_request_duration_seconds_count") == 2)
    assert value(samples, "betula_requests_in_flight") == 0
    assert value(samples, "betula_requests_total", method="GET", status="200") == 2


def test_websocket_connections_and_messages(serve):
    server, port = start(serve, ASGI)
    with websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        for n in range(4):
            ws.send(f"m{n}")
            assert ws.recv(timeout=10) == f"m{n}"
        samples = until(port, lambda s: value(s, "betula_websocket_connections") == 1)
        assert value(samples, "betula_websocket_connections") == 1
        assert value(samples, "betula_connections", protocol="websocket") == 1
    samples = until(port, lambda s: value(s, "betula_websocket_connections") == 0)
    assert value(samples, "betula_websocket_connections") == 0
    assert value(samples, "betula_websocket_connections_opened_total") == 1
    assert value(samples, "betula_websocket_messages_total", direction="in") == 4
    assert value(samples, "betula_websocket_messages_total", direction="out") == 4


def live_files(directory) -> set[int]:
    return {int(name.split("-")[0]) for name in os.listdir(directory) if name.endswith(".json")}


def worker_pids(server) -> set[int]:
    import re

    return {int(pid) for pid in re.findall(r"Booting worker \d+ \(pid (\d+)\)", server.log)}


def test_recycled_workers_keep_their_counts_and_leave_no_file(serve, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    server, port = start(serve, ASGI, "--workers", "2", "--limit-max-requests", "4",
                         "--metrics-dir", str(directory))
    total = 0
    for _round in range(3):
        each_on_a_new_connection(server, [("GET", "/hello", None)] * 6)
        total += 6
        time.sleep(1.2)  # a tick: the workers ask to be recycled
    samples = until(port, lambda s: value(s, "betula_requests_total", method="GET",
                                          status="200") == total
                    and value(s, "betula_worker_restarts_total", reason="recycle") >= 2)
    assert value(samples, "betula_requests_total", method="GET", status="200") == total
    assert value(samples, "betula_worker_restarts_total", reason="recycle") >= 2
    assert value(samples, "betula_worker_restarts_total", reason="crash") == 0
    # only live workers have files (a recycled worker's was folded in and removed)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = {pid for pid in worker_pids(server) if _alive(pid)}
        if live_files(directory) <= alive:
            break
        time.sleep(0.2)
    assert live_files(directory) <= {pid for pid in worker_pids(server) if _alive(pid)}
    assert server.stop() == 0
    assert list(directory.iterdir()) == []  # the master stopped: every worker folded


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crash_and_a_rolling_restart_are_counted_by_reason(serve):
    server, port = start(serve, ASGI, "--workers", "2")
    assert server.wait_for_log(r"Booting worker 2", 10)
    each_on_a_new_connection(server, [("GET", "/hello", None)] * 3)
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.base_url + "/die", timeout=10)
    assert server.wait_for_log(r"died: exit status 1; starting a new one", 10), server.log
    samples = until(port, lambda s: value(s, "betula_worker_restarts_total", reason="crash")
                    == 1)
    assert value(samples, "betula_worker_restarts_total", reason="crash") == 1
    server.send_signal(signal.SIGHUP)
    assert server.wait_for_log(r"Rolling restart done", 30), server.log
    samples = until(port, lambda s: value(s, "betula_worker_restarts_total", reason="reload")
                    == 2)
    assert value(samples, "betula_worker_restarts_total", reason="reload") == 2
    assert value(samples, "betula_worker_restarts_total", reason="crash") == 1
    # the three answered requests survive both (the crashed worker's are kept too, as far
    # as its last file had them: it wrote once a second)
    assert value(samples, "betula_requests_total", method="GET", status="200") <= 3


def test_only_metrics_is_served_on_the_metrics_port(serve):
    _server, port = start(serve, ASGI)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 404
    assert httpx.get(f"http://127.0.0.1:{port}/metrics?x=1", timeout=10).status_code == 200


@pytest.mark.parametrize("workers", ["1", "2"], ids=["single", "master"])
def test_a_metrics_port_in_use_is_an_error(workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = run_cli(ASGI, "--port", "0", "--workers", workers, "--metrics-port",
                            str(port), timeout=30)
    assert code != 0
    assert f"cannot listen for metrics on 127.0.0.1:{port}" in out, out


def _mode_counts(python: str, mode: str) -> None:
    from tests.support.server import ServerProcess

    port = free_port()
    server = ServerProcess(["--worker-mode", mode, "--workers", "2", "--port", "0",
                            "--no-access-log", "--metrics-port", str(port), ASGI],
                           command=[python, "-m", "betula"])
    server.start(wait=True, timeout=60)
    try:
        each_on_a_new_connection(server, [("GET", "/hello", None)] * 9 +
                                 [("POST", "/echo", b"abc")])
        samples = until(port, lambda s: value(s, "betula_request_duration_seconds_count")
                        == 10)
        assert value(samples, "betula_requests_total", method="GET", status="200") == 9
        assert value(samples, "betula_requests_total", method="POST", status="200") == 1
        assert value(samples, "betula_body_bytes_total", direction="in") == 3
        assert value(samples, "betula_workers") == 1  # one process (its threads or guests)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log


def test_thread_mode_counts_every_threads_requests():
    from tests.test_thread_mode import free_threaded_python

    _mode_counts(free_threaded_python(), "thread")


def test_subinterpreter_mode_counts_the_hosts_requests():
    from tests.test_subinterpreter_mode import python313

    _mode_counts(python313(), "subinterpreter")
