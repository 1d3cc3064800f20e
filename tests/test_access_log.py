"""--access-log-format (gunicorn's atoms), --access-log-json, --access-log-file and its
reopening on SIGUSR1: the real CLI, real clients (httpx over HTTP/1.1 and HTTP/2, a
WebSocket), ASGI and WSGI alike."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time

import httpx
import pytest
import websockets.sync.client

from betula.access_log import JSON_KEYS
from tests.support.server import one_error_line, run_cli

ASGI = "tests.apps.access_apps:app"
WSGI = "tests.apps.access_apps:wsgi"
GUNICORN_DEFAULT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def get(server, path: str, headers: dict[str, str] | None = None, http2: bool = False
        ) -> httpx.Response:
    with httpx.Client(http1=not http2, http2=http2, timeout=10) as client:
        return client.get(server.base_url + path, headers=headers or {})


def line(server, pattern: str) -> str:
    found = server.wait_for_log(pattern, 10)
    assert found is not None, f"no line matching {pattern!r} in:\n{server.log}"
    return found


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_gunicorns_default_format_gives_gunicorns_line(serve, app):
    server = serve(app, "--access-log-format", GUNICORN_DEFAULT)
    response = get(server, "/hello?x=1&y=two", {"Referer": "http://ref.example/",
                                                "User-Agent": "tester/1.0"})
    assert response.status_code == 200
    got = line(server, r'"GET /hello')
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                        r'"GET /hello\?x=1&y=two HTTP/1\.1" 200 5 "http://ref\.example/" '
                        r'"tester/1\.0"', got), got  # alone on its line: no log prefix


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_each_atom(serve, app):
    fmt = ("ATOMS m=%(m)s U=%(U)s q=%(q)s H=%(H)s s=%(s)s B=%(B)s b=%(b)s T=%(T)s M=%(M)s "
           "D=%(D)s L=%(L)s p=%(p)s u=%(u)s in=%({X-Request-Id}i)s out=%({x-answer}o)s "
           "env=%({ACCESS_TEST_VAR}e)s none=%({x-absent}i)s unknown=%(Z)s")
    server = serve(app, "--access-log-format", fmt, env={"ACCESS_TEST_VAR": "from-env"})
    auth = "Basic " + base64.b64encode(b"alice:secret").decode()
    get(server, "/missing?k=v", {"X-Request-Id": "req-77", "Authorization": auth})
    got = line(server, r"^ATOMS ")
    match = re.fullmatch(
        r"ATOMS m=GET U=/missing q=k=v H=HTTP/1\.1 s=404 B=5 b=5 T=(\d+) M=(\d+) D=(\d+) "
        r"L=(\d+\.\d{6}) p=<(\d+)> u=alice in=req-77 out=forty-two env=(\S+) none=- "
        r"unknown=-", got)
    assert match, got
    seconds, millis, micros, decimal, pid = (match.group(i) for i in range(1, 6))
    assert int(micros) // 1000 == int(millis) and int(seconds) == int(float(decimal))
    assert abs(float(decimal) * 1e6 - int(micros)) <= 1
    assert int(pid) == server.proc.pid  # one process (no master): the worker is it
    # {NAME}e: the WSGI environ for a WSGI app, else the process's environment
    assert match.group(6) == "from-env"


def test_a_wsgi_apps_environ_atoms(serve):
    server = serve(WSGI, "--access-log-format",
                   "ENV %({PATH_INFO}e)s %({wsgi.url_scheme}e)s %({HTTP_X_TAG}e)s")
    get(server, "/hello", {"X-Tag": "t1"})
    assert line(server, r"^ENV ") == "ENV /hello http t1"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_a_streamed_response_counts_its_bytes(serve, app):
    server = serve(app, "--access-log-format", "STREAM %(r)s %(s)s %(B)s %({x-answer}o)s")
    assert get(server, "/stream").content == b"onetwosix"
    assert line(server, r"^STREAM ") == "STREAM GET /stream HTTP/1.1 200 9 forty-two"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_http2_requests_say_their_protocol(serve, app):
    server = serve(app, "--access-log-format", "H2 %(H)s %(r)s %({x-answer}o)s")
    assert get(server, "/hello", http2=True).http_version == "HTTP/2"
    assert line(server, r"^H2 ") == "H2 HTTP/2 GET /hello HTTP/2 forty-two"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_the_client_is_a_trusted_proxys(serve, app):
    server = serve(app, "--access-log-format", "PROXIED %(h)s")
    get(server, "/hello", {"X-Forwarded-For": "203.0.113.9"})
    assert line(server, r"^PROXIED ") == "PROXIED 203.0.113.9"


def test_quotes_in_values_are_escaped(serve):
    server = serve(ASGI, "--access-log-format", 'QUOTE "%(a)s"')
    get(server, "/hello", {"User-Agent": 'evil" agent'})
    assert line(server, r"^QUOTE ") == 'QUOTE "evil\\" agent"'


def test_a_websocket_handshake_is_logged_in_the_format(serve):
    server = serve(ASGI, "--access-log-format", "WS %(m)s %(U)s %(s)s")
    with websockets.sync.client.connect(f"ws://{server.host}:{server.port}/ws") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=10)
    assert line(server, r"^WS ") == "WS GET /ws 101"


@pytest.mark.parametrize("app", [ASGI, WSGI])
def test_json_lines(serve, app):
    server = serve(app, "--access-log-json")
    get(server, "/hello?a=b", {"User-Agent": "json-tester", "Referer": "r"})
    record = json.loads(line(server, r'^\{"time"'))
    assert tuple(record) == JSON_KEYS
    assert record["method"] == "GET" and record["path"] == "/hello"
    assert record["query"] == "a=b" and record["protocol"] == "HTTP/1.1"
    assert record["status"] == 200 and record["bytes"] == 5
    assert record["user_agent"] == "json-tester" and record["referer"] == "r"
    assert record["client"].startswith("127.0.0.1:") and record["pid"] == server.proc.pid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0


def _lines(path, marker: str) -> list[str]:
    if not path.exists():
        return []
    return [text for text in path.read_text().splitlines() if text.startswith(marker)]


def _wait_for_lines(path, marker: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(_lines(path, marker)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return _lines(path, marker)


@pytest.mark.parametrize("workers", ["1", "2"], ids=["single", "master"])
def test_the_file_is_reopened_on_sigusr1_after_logrotate_moved_it(serve, tmp_path, workers):
    path = tmp_path / "access.log"
    server = serve(ASGI, "--workers", workers, "--access-log-file", str(path),
                   "--access-log-format", "FILE %(U)s")
    get(server, "/before")
    assert _wait_for_lines(path, "FILE", 1) == ["FILE /before"]
    assert "FILE /before" not in server.log  # in the file, not on stderr
    rotated = tmp_path / "access.log.1"
    os.rename(path, rotated)  # what logrotate does
    server.send_signal(signal.SIGUSR1)
    if workers == "2":
        assert server.wait_for_log(r"SIGUSR1: reopening log files", 10), server.log
    # Every worker reopens: once the new file exists, requests land there (each over a
    # new connection, so both workers answer some).
    deadline = time.monotonic() + 10
    n = 0
    while time.monotonic() < deadline:
        n += 1
        get(server, f"/after{n}")
        if path.exists() and len(_lines(rotated, "FILE")) + len(_lines(path, "FILE")) == n + 1 \
                and n >= 6 and all(f"FILE /after{n}" in _lines(path, "FILE")
                                   for n in range(n - 3, n + 1)):
            break
        time.sleep(0.05)
    new = _lines(path, "FILE")
    assert new and all(text.startswith("FILE /after") for text in new), new
    assert [f"FILE /after{i}" for i in range(n - 3, n + 1)] == new[-4:], new
    assert _lines(rotated, "FILE")[0] == "FILE /before"
    assert server.proc.poll() is None  # USR1 does not stop anything
    assert server.stop() == 0


def test_dash_writes_to_stdout(serve):
    server = serve(ASGI, "--access-log-file", "-", "--access-log-format", "STDOUT %(s)s")
    get(server, "/hello")
    assert line(server, r"^STDOUT ") == "STDOUT 200"


def test_a_bad_format_is_one_error_line():
    code, out = run_cli("--access-log-format", "%(h)s %d", ASGI)
    assert code == 2
    assert one_error_line(out).startswith("betula: error: invalid value for access_log_format")


def test_an_access_log_file_that_cannot_be_opened_is_one_error_line(tmp_path):
    code, out = run_cli("--access-log-file", str(tmp_path / "missing-dir" / "a.log"), ASGI)
    assert code == 2
    assert "cannot open the access log file" in one_error_line(out)
