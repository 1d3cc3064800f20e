"""Real Starlette and FastAPI apps served by the real CLI, talked to with httpx and raw sockets.

Issue 2, "Tests": routing, JSON, request bodies, streaming responses, SSE with disconnect,
background tasks, lifespan state; plus the framework features that lean on the server's
ASGI extensions and framing (FileResponse over ``http.response.pathsend``, redirects,
repeated ``Set-Cookie``, exception handlers, FastAPI's 422s). No TestClient anywhere.

The apps live in tests/apps/starlette_app.py and tests/apps/fastapi_app.py and share the
endpoints most tests use, so those tests run against both. One server per framework for the
whole module (started lazily); per-request state is keyed by a fresh token.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import python_multipart  # noqa: F401 - a test extra (form bodies): missing is an error, not a skip

from tests.support.logs import assert_logged_with_traceback, new_id
from tests.support.procs import wait_until
from tests.support.server import ServerProcess
from tests.support.slowread import LARGER_THAN_BUFFERS, slow_reader, stalled_mid_body
from tests.support.tcp import tcp_ends
from tests.support.wire import RawReader, read_response

APPS = {
    "starlette": "tests.apps.starlette_app:app",
    "fastapi": "tests.apps.fastapi_app:app",
}


# Bigger than the kernel can hold for a stalled slow reader, so it stalls the server
# mid-file on any host; an odd length.
FILE_SIZE = LARGER_THAN_BUFFERS + 123

pytestmark = pytest.mark.timeout(60)


class Served:
    def __init__(self, server: ServerProcess, marks: Path, data: bytes) -> None:
        self.server = server
        self.marks = marks
        self.data = data
        self.url = server.base_url

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def wait_mark(self, token: str, timeout: float = 10.0) -> str | None:
        """The text of the marker file the app writes once it is done (None if it never
        came within the hang guard)."""
        path = self.marks / token
        return wait_until(lambda: path.exists() and path.read_text(), timeout) or None


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("frameworks")
    data = os.urandom(FILE_SIZE)
    (root / "data.bin").write_bytes(data)
    started: dict[str, Served] = {}

    def get(framework: str) -> Served:
        if framework not in started:
            marks = root / f"marks-{framework}"
            marks.mkdir()
            server = ServerProcess(
                [APPS[framework], "--port", "0", "--timeout-keep-alive", "5"],
                env={"TESTAPP_MARK_DIR": str(marks), "TESTAPP_FILE": str(root / "data.bin")})
            server.start()
            started[framework] = Served(server, marks, data)
        return started[framework]

    yield get
    for served in started.values():
        served.server.stop(signal.SIGINT)


@pytest.fixture(params=sorted(APPS))
def app(request, servers) -> Served:
    return servers(request.param)


@pytest.fixture
def fastapi(servers) -> Served:
    return servers("fastapi")


@pytest.fixture
def starlette(servers) -> Served:
    return servers("starlette")


# -- routing and bodies -------------------------------------------------------------------------
def test_path_params_and_query(app):
    with app.client() as client:
        response = client.get("/users/42", params={"verbose": "yes"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)
        assert response.json() == {"user_id": 42, "type": "int", "verbose": "yes"}
        # a percent-encoded path parameter arrives decoded; a path converter spans slashes
        response = client.get("/docs/guide/%C3%A9t%C3%A9%202024/intro.md")
        assert response.status_code == 200
        assert response.json() == {"path": "guide/été 2024/intro.md"}


def test_json_request_body(app):
    payload = {"name": "Zoë ✓", "nested": {"list": [1, 2.5, None, True]},
               "big": list(range(60_000))}  # ~400 KB: arrives in several http.request parts
    with app.client() as client:
        response = client.post("/json", json=payload)
    assert response.status_code == 200
    assert response.json() == {"received": payload, "keys": ["big", "name", "nested"]}


def test_urlencoded_form_body(app):
    with app.client() as client:
        response = client.post("/form", data={"tag": ["a", "b & c"], "name": "Zoë=1"})
    assert response.status_code == 200
    assert response.json() == {"fields": {"tag": ["a", "b & c"], "name": ["Zoë=1"]}}


def test_multipart_file_upload(app):
    content = os.urandom(700_000)
    with app.client() as client:
        response = client.post(
            "/upload", files={"file": ("report.bin", content, "application/x-test")},
            data={"note": "quarterly"})
    assert response.status_code == 200
    assert response.json() == {
        "filename": "report.bin", "content_type": "application/x-test",
        "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
        "note": "quarterly",
    }


def test_fastapi_form_parameters(fastapi):
    with fastapi.client() as client:
        response = client.post("/login", data={"username": "bob", "password": "s3cret!"})
        assert response.status_code == 200
        assert response.json() == {"username": "bob", "password_length": 7}
        missing = client.post("/login", data={"username": "bob"})
        assert missing.status_code == 422
        assert [e["loc"] for e in missing.json()["detail"]] == [["body", "password"]]


# -- streaming ------------------------------------------------------------------------------------
def test_streaming_response_uses_chunked_framing(app):
    with socket.create_connection((app.server.host, app.server.port), timeout=10) as sock:
        reader = RawReader(sock)
        sock.sendall(b"GET /stream?n=6 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = reader.head()
        names = [name for name, _ in headers]
        assert status == 200
        assert ("transfer-encoding", "chunked") in headers
        assert "content-length" not in names
        assert ("content-type", "text/plain; charset=utf-8") in headers
        chunks = reader.chunks()
        assert b"".join(chunks) == b"".join(b"part %d\n" % i for i in range(6))
        assert len(chunks) >= 2, f"the stream arrived as one piece: {chunks}"
        assert all(chunks), "an empty chunk before the end would end the body early"
        # the framing ended exactly where it should: the connection serves the next request
        sock.sendall(b"GET /users/7 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["user_id"] == 7


def test_sse_client_disconnect_is_seen_by_the_app(app):
    mark = new_id()
    events: list[dict[str, str]] = []
    with app.client() as client, \
            client.stream("GET", "/sse", params={"token": mark}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["transfer-encoding"] == "chunked"
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                field, _, value = line.partition(": ")
                event[field] = value
                continue
            events.append(event)
            event = {}
            if len(events) == 2:
                break
    # leaving the block closes the connection with the stream still open
    assert events == [
        {"id": "0", "event": "tick", "data": '{"n": 0}'},
        {"id": "1", "event": "tick", "data": '{"n": 1}'},
    ]
    # The app's generator must learn the client left (is_disconnected() or a failing send
    # closes it) and stop: its finally block writes the marker.
    text = app.wait_mark(mark)
    assert text is not None, "the SSE generator never saw the disconnect"
    sent = int(text.rsplit(" ", 2)[-2])
    assert sent >= 2
    with app.client() as client:
        assert client.get("/users/5").json()["user_id"] == 5  # the server is fine


def test_sse_disconnect_seen_without_writing(starlette):
    """An SSE app waiting for events (no writes) polls request.is_disconnected(): the
    client's close must reach it as http.disconnect ("as soon as the client goes away")."""
    mark = new_id()
    with socket.create_connection((starlette.server.host, starlette.server.port),
                                  timeout=10) as sock:
        reader = RawReader(sock)
        sock.sendall(b"GET /sse-quiet?token=%b HTTP/1.1\r\nHost: x\r\n\r\n" % mark.encode())
        status, _ = reader.head()
        assert status == 200
        assert reader.line() == b"d" and reader.exact(15) == b": connected\n\n\r\n"
    assert starlette.wait_mark(mark) == "is_disconnected"


# -- background tasks and lifespan state ----------------------------------------------------------
def test_background_task_runs_after_the_response(app):
    mark = new_id()
    with app.client() as client:
        # The task waits for /release: the response must arrive while the task is pending.
        response = client.post("/background", params={"token": mark})
        assert response.status_code == 200
        assert response.json() == {"queued": mark}
        assert client.get("/background-status", params={"token": mark}).json() == \
            {"status": "pending"}
        assert client.get("/release", params={"token": mark}).text == "released"
        assert app.wait_mark(mark) == "background done"
        assert client.get("/background-status", params={"token": mark}).json() == \
            {"status": "done"}


def test_lifespan_state_reaches_requests(app):
    with app.client() as client:
        first = client.get("/state", params={"overwrite": "1"})
        second = client.get("/state")
    assert first.status_code == second.status_code == 200
    assert first.json()["greeting"] == "hello from lifespan"
    # the request's state is a shallow copy: a reassignment does not leak into the next
    # request, while the shared mutable object is the same one
    assert second.json()["greeting"] == "hello from lifespan"
    assert second.json()["hits"] == first.json()["hits"] + 1


# -- errors --------------------------------------------------------------------------------------
def test_custom_exception_handler(app):
    with app.client() as client:
        response = client.get("/teapot", params={"what": "earl grey"})
    assert response.status_code == 418
    assert response.json() == {"error": "teapot", "what": "earl grey"}


def test_http_exception_404(app):
    with app.client() as client:
        raised = client.get("/missing/widget")
        unknown = client.get("/no/such/route")
    assert raised.status_code == 404
    assert raised.json()["detail"] == "no item widget"
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "Not Found"


def test_unhandled_exception_gives_500_and_is_logged(app):
    with app.client() as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert client.get("/users/3").json()["user_id"] == 3
    assert_logged_with_traceback(app.server, "RuntimeError: boom in a")


def test_fastapi_validation_errors_are_422(fastapi):
    with fastapi.client() as client:
        bad_path = client.get("/users/not-a-number")
        assert bad_path.status_code == 422
        [error] = bad_path.json()["detail"]
        assert error["loc"] == ["path", "user_id"] and error["type"] == "int_parsing"

        bad_body = client.post("/items", json={"name": "", "price": -1})
        assert bad_body.status_code == 422
        assert sorted(tuple(e["loc"]) for e in bad_body.json()["detail"]) == \
            [("body", "name"), ("body", "price")]

        not_json = client.post("/items", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert not_json.status_code == 422
        assert not_json.json()["detail"][0]["type"] == "json_invalid"

        good = client.post("/items", json={"name": "saw", "price": 12.5, "tags": ["a", "b"]})
        assert good.status_code == 201
        assert good.json() == {"created": {"name": "saw", "price": 12.5, "tags": ["a", "b"]},
                               "total": 25.0}


def test_fastapi_http_exception_with_headers(fastapi):
    with fastapi.client() as client:
        missing = client.get("/items/99")
        found = client.get("/items/1", params={"q": "x"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Item not found"}
    assert missing.headers["x-error"] == "missing-item"
    assert found.status_code == 200
    assert found.json() == {"item_id": 1, "q": "x", "name": "hammer", "price": 9.5}


# -- files, redirects, cookies ------------------------------------------------------------------
def test_file_response_arrives_intact(app):
    with app.client() as client:
        response = client.get("/file")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(FILE_SIZE)
    assert response.headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert "transfer-encoding" not in response.headers
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(app.data).hexdigest()


def test_file_response_to_slow_reader_then_keep_alive(app):
    """The client reads nothing until the server has to wait for it mid-file, then reads:
    every byte arrives in order, and HEAD and a next request work on the same connection."""
    with slow_reader(app.server) as sock:
        sock.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        # Read nothing until the client's window is closed (the server's end probes it)
        # with part of the file not in the kernel's buffers yet: the server must wait.
        assert wait_until(lambda: stalled_mid_body(sock, FILE_SIZE), 10), \
            f"the server never stalled mid-file: {tcp_ends(sock)}"
        status, _, _, body = read_response(sock)
        assert status == 200
        assert len(body) == FILE_SIZE
        assert body == app.data
        sock.sendall(b"HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /users/9 HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = RawReader(sock)
        status, head_headers = reader.head()
        assert status == 200
        assert ("content-length", str(FILE_SIZE)) in head_headers
        # no body after a HEAD response: the next bytes are the next response's status line
        status, next_headers = reader.head()
        assert status == 200
        length = int(dict(next_headers)["content-length"])
        assert json.loads(reader.exact(length))["user_id"] == 9


def test_file_range_request(app):
    with app.client() as client:
        response = client.get("/file", headers={"range": "bytes=1000-1999"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 1000-1999/{FILE_SIZE}"
    assert response.content == app.data[1000:2000]


def test_redirect_responses(app):
    with app.client() as client:
        temporary = client.get("/old")
        found = client.get("/old", params={"code": "302"})
        followed = client.get("/old", follow_redirects=True)
    assert temporary.status_code == 307
    assert temporary.headers["location"] == "/users/42"
    assert temporary.content == b""
    assert found.status_code == 302
    assert found.headers["location"] == "/users/42"
    assert followed.status_code == 200
    assert followed.json()["user_id"] == 42
    assert [r.status_code for r in followed.history] == [307]


def test_two_set_cookie_headers(app):
    with socket.create_connection((app.server.host, app.server.port), timeout=10) as sock:
        sock.sendall(b"GET /cookies HTTP/1.1\r\nHost: x\r\nCookie: visit=1\r\n\r\n")
        status, _, headers_list, body = read_response(sock)
    assert status == 200
    cookies = [value for name, value in headers_list if name == "set-cookie"]
    assert len(cookies) == 2, headers_list
    assert cookies[0].startswith("session=abc123;") and "HttpOnly" in cookies[0]
    assert cookies[1].startswith("theme=dark;") and "Max-Age=3600" in cookies[1]
    assert json.loads(body) == {"cookies": {"visit": "1"}}
    # and a client keeps both
    with app.client() as client:
        client.get("/cookies")
        assert dict(client.cookies) == {"session": "abc123", "theme": "dark"}
        assert client.get("/cookies").json() == {"cookies": {"session": "abc123",
                                                             "theme": "dark"}}
