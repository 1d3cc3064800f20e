"""Worker recycling (--limit-max-requests with jitter, --limit-max-rss) and the stuck-worker
kill (--timeout-worker), through the real CLI with a master and real sockets."""

import re
import socket

import httpx

APP = "tests.apps.recycle_apps:app"


def get(server, path="/", timeout=10.0):
    return httpx.get(server.base_url + path, timeout=timeout)


def drive(server, until, max_requests=3000):
    """Send requests (new connection each) until ``until(log, pids)`` holds; bounded.
    Returns (pids seen, failures)."""
    pids: list[int] = []
    failures = 0
    with httpx.Client(timeout=10.0) as client:
        for _ in range(max_requests):
            try:
                response = client.get(server.base_url + "/", headers={"connection": "close"})
                assert response.status_code == 200
                pids.append(int(response.text))
            except httpx.HTTPError:
                failures += 1
            if until(server.log, pids):
                break
    return pids, failures


def test_max_requests_recycles_with_zero_failures(serve):
    server = serve(APP, "--workers", "2", "--limit-max-requests", "20",
                   "--limit-max-requests-jitter", "5", "--lifespan", "off")
    # Keep going until two recycles are done and a replacement has answered.
    pids, failures = drive(server, lambda log, pids: log.count("Recycling worker") >= 2
                           and len(set(pids)) > 3)
    assert failures == 0
    assert log_has(server, r"asking the master for a replacement")
    assert len(set(pids)) > 3, server.log  # replacements served
    assert "died" not in server.log  # a recycle is not a death


def log_has(server, pattern):
    return re.search(pattern, server.log) is not None


def test_max_requests_without_master_stops_the_process(serve):
    server = serve(APP, "--limit-max-requests", "3", "--lifespan", "off")
    for _ in range(3):
        assert get(server).status_code == 200
    assert server.wait_exit(15) == 0
    assert "no master to replace this process" in server.log


def test_max_rss_recycles_a_growing_worker(serve):
    server = serve(APP, "--workers", "2", "--limit-max-rss", "100", "--lifespan", "off")
    grown = None
    for _ in range(4):  # 160 MiB kept alive in whichever worker answers
        grown = int(get(server, "/grow").text)
    line = server.wait_for_log(r"memory \d+ MiB over --limit-max-rss 100", 15)
    assert line is not None, server.log
    assert server.wait_for_log(r"Recycling worker", 10)
    assert grown is not None


def test_stuck_worker_is_killed_and_its_request_path_logged(serve):
    server = serve(APP, "--workers", "2", "--timeout-worker", "2", "--lifespan", "off")
    sock = socket.create_connection((server.host, server.port), timeout=30)
    try:
        sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        line = server.wait_for_log(r"Worker \d+ stuck on request: GET /block", 20)
        assert line is not None, server.log
        assert server.wait_for_log(r"killed after being stuck; starting a new one", 10)
        sock.settimeout(10)
        try:
            data = sock.recv(1024)
        except ConnectionError:
            data = b""
        assert data == b""  # the stuck worker's connection ended with it
    finally:
        sock.close()
    assert server.wait_for_log(r"Booting worker \d+", 5)
    # The other worker and the replacement keep serving.
    for _ in range(5):
        assert get(server).status_code == 200


def test_jitter_makes_workers_recycle_at_different_counts(serve):
    server = serve(APP, "--workers", "2", "--limit-max-requests", "10",
                   "--limit-max-requests-jitter", "50", "--lifespan", "off")
    drive(server, lambda log, pids: len(re.findall(r"\(limit \d+\)", log)) >= 4)
    limits = [int(m) for m in re.findall(r"\(limit (\d+)\)", server.log)]
    assert len(limits) >= 4, server.log
    assert all(10 <= value <= 60 for value in limits)
    assert len(set(limits)) > 1  # each worker draws its own limit
