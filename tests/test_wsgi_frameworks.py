"""Real WSGI framework apps, Flask and Django, served by the real CLI.

Issue 3, "Tests": real apps — a Flask app (routing, JSON, form upload, streaming) and a Django
project (a model on SQLite, a form POST with CSRF, the admin login page). Talked to with httpx
for ordinary traffic and raw sockets where the framing itself is the point (chunked streaming,
HEAD, 304, repeated headers).

The Flask app is tests/apps/flask_app.py; the Django project is tests/apps/djangoproj/ and is
served as ``betula tests.apps.djangoproj.wsgi:application`` after ``python -m django migrate``
on a temporary SQLite database. Servers are started once per module (lazily); the ones with
``--root-path`` only when a test needs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import django
import flask  # noqa: F401 - a test extra like django and httpx: missing is an error, not a skip
import httpx
import pytest

from tests.support.logs import assert_logged_with_traceback, new_id
from tests.support.procs import wait_until
from tests.support.server import ROOT, ServerProcess
from tests.support.slowread import LARGER_THAN_BUFFERS, slow_reader, stalled_mid_body
from tests.support.tcp import tcp_ends
from tests.support.wire import RawReader, read_response

pytestmark = pytest.mark.timeout(60)

# Bigger than the kernel can hold for a stalled slow reader (derived from /proc), so sending
# the file to one must wait for it mid-file; an odd length.
FILE_SIZE = LARGER_THAN_BUFFERS + 77
ADMIN_CSS = Path(django.__file__).resolve().parent / "contrib/admin/static/admin/css/base.css"
SUPERUSER = ("admin", "betula-pw-9183")


def raw_request(server: ServerProcess, method: str, target: str,
                headers: list[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {server.host}:{server.port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body and not any(n.lower() in ("content-length", "transfer-encoding")
                        for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get_all(headers_list: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers_list if key == name]


# ================================================================================================
# Flask
# ================================================================================================
@pytest.fixture(scope="module")
def flask_servers(tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("flask")
    data = os.urandom(FILE_SIZE)
    path = root / "data.bin"
    path.write_bytes(data)
    started: dict[str, ServerProcess] = {}
    variants = {
        "main": ["tests.apps.flask_app:app"],
        "prefixed": ["tests.apps.flask_app:app", "--root-path", "/prefix"],
        "propagating": ["tests.apps.flask_app:propagating"],
    }

    def get(name: str) -> ServerProcess:
        if name not in started:
            server = ServerProcess([*variants[name], "--port", "0"],
                                   env={"FLASK_TEST_FILE": str(path)})
            started[name] = server
            server.start()
            server.data = data  # type: ignore[attr-defined]
        return started[name]

    yield get
    for server in started.values():
        server.stop(signal.SIGINT)


@pytest.fixture
def fl(flask_servers) -> ServerProcess:
    return flask_servers("main")


def client(server: ServerProcess, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=10, **kwargs)


def test_flask_detected_as_wsgi(fl):
    assert re.search(r"\bWSGI\b[^\n]*detected", fl.log), fl.log
    with client(fl) as c:
        response = c.get("/")
    assert response.status_code == 200
    assert response.text == "flask says hi"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)


def test_flask_routing_converters(fl):
    item = uuid.uuid4()
    with client(fl) as c:
        response = c.get("/users/42/posts/my-first-post")
        assert response.status_code == 200
        assert response.json() == {"uid": 42, "uid_type": "int", "slug": "my-first-post"}
        assert c.get("/price/2.5").json() == {"amount": 2.5, "doubled": 5.0}
        assert c.get(f"/items/{item}").json() == {"item_id": str(item), "version": 4}
        # a path converter spans slashes
        assert c.get("/files/a/b/c.txt").json()["subpath"] == "a/b/c.txt"
        # converters that do not match are 404s, not 500s
        assert c.get("/users/abc/posts/x").status_code == 404
        assert c.get("/price/abc").status_code == 404
        assert c.get("/items/not-a-uuid").status_code == 404
        # methods: allowed ones answer, others get 405 with Allow
        assert c.put("/methods").json() == {"method": "PUT"}
        assert c.delete("/methods").json() == {"method": "DELETE"}
        response = c.post("/methods")
        assert response.status_code == 405
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET", "PUT", "DELETE"} <= allowed and "POST" not in allowed


def test_flask_percent_encoded_path_is_latin1_in_environ(fl):
    with client(fl) as c:
        response = c.get("/files/caf%C3%A9/na%20me%2Bplus.txt")
    assert response.status_code == 200
    body = response.json()
    # Flask/Werkzeug decode PATH_INFO (bytes carried as latin-1, PEP 3333) back to UTF-8 text
    assert body["subpath"] == "café/na me+plus.txt"
    assert body["path_info"] == "/files/café/na me+plus.txt".encode().decode("latin-1")


def test_flask_json_request_and_response(fl):
    payload = {"name": "Zoë ✓", "nested": {"list": [1, 2.5, None, True]},
               "big": list(range(50_000))}  # ~300 KB: several reads of wsgi.input
    with client(fl) as c:
        response = c.post("/json", json=payload)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["received"] == payload
    assert body["keys"] == ["big", "name", "nested"]
    assert body["content_length"] == str(len(response.request.content))


def test_flask_json_chunked_request_body(fl):
    """A chunked request body: no CONTENT_LENGTH, and Flask reads it all because the server
    says ``wsgi.input_terminated``."""
    payload = json.dumps({"k": "v" * 5000, "n": [1, 2, 3]}).encode()
    pieces = [payload[i:i + 1000] for i in range(0, len(payload), 1000)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with fl.connect() as sock:
        sock.sendall(raw_request(fl, "POST", "/json",
                                 [("Content-Type", "application/json"),
                                  ("Transfer-Encoding", "chunked")], body))
        status, headers, _, data = read_response(sock)
    assert status == 201, data
    result = json.loads(data)
    assert result["received"] == json.loads(payload)
    assert result["content_length"] == ""
    assert result["transfer_encoding"] == "chunked"


def test_flask_bad_json_is_400(fl):
    with client(fl) as c:
        response = c.post("/json", content=b"{not json",
                          headers={"content-type": "application/json"})
        assert response.status_code == 400
        # the connection is still usable after the framework's error response
        assert c.get("/").status_code == 200


def test_flask_form_post(fl):
    with client(fl) as c:
        response = c.post("/form", data={"name": "Zoë & co=1", "tag": ["a", "b c"],
                                         "note": "x" * 10_000})
    assert response.status_code == 200
    assert response.json() == {"name": "Zoë & co=1", "tags": ["a", "b c"], "note": "x" * 10_000}


def test_flask_multipart_file_upload(fl):
    big = os.urandom(3 * 1024 * 1024 + 11)
    small = "héllo\r\nwörld\n".encode()
    with client(fl) as c:
        response = c.post("/upload", data={"title": "two files", "lang": "fr"},
                          files=[("big", ("big.bin", big, "application/x-test")),
                                 ("small", ("notes é.txt", small, "text/plain"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fields"] == {"title": "two files", "lang": "fr"}
    assert body["files"]["big"] == {"filename": "big.bin", "content_type": "application/x-test",
                                    "size": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert body["files"]["small"]["sha256"] == hashlib.sha256(small).hexdigest()
    assert body["files"]["small"]["size"] == len(small)
    assert body["files"]["small"]["filename"] == "notes é.txt"


def test_flask_upload_with_expect_continue(fl):
    """curl-style upload: headers with ``Expect: 100-continue``; the 100 comes once Flask
    reads the body, then the body goes and the upload is hashed."""
    content = os.urandom(200_000)
    boundary = "----betula" + new_id()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\""
            f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()
    head = raw_request(fl, "POST", "/upload",
                       [("Content-Type", f"multipart/form-data; boundary={boundary}"),
                        ("Content-Length", str(len(body))), ("Expect", "100-continue")])
    with fl.connect() as sock:
        sock.sendall(head)
        reader = RawReader(sock)
        assert reader.line().startswith(b"HTTP/1.1 100 "), "no 100 Continue"
        assert reader.line() == b""
        sock.sendall(body)
        sock.sendall(raw_request(fl, "GET", "/"))  # pipelined follow-up
        status, headers = reader.head()
        assert status == 200
        data = reader.exact(int(dict(headers)["content-length"]))
        result = json.loads(data)
        assert result["files"]["f"]["sha256"] == hashlib.sha256(content).hexdigest()
        status, headers = reader.head()
        assert status == 200
        assert reader.exact(int(dict(headers)["content-length"])) == b"flask says hi"


def test_flask_streaming_chunks_arrive_as_yielded(fl):
    """stream_with_context generator: chunked framing, and each chunk reaches the client while
    the generator waits for the test's go-ahead (another request on another connection, which
    the thread pool serves meanwhile)."""
    tok = new_id()
    with fl.connect() as sock, client(fl) as c:
        sock.sendall(raw_request(fl, "GET", f"/stream/{tok}?n=4&label=part"))
        reader = RawReader(sock)
        status, headers = reader.head()
        assert status == 200
        assert get_all(headers, "transfer-encoding") == ["chunked"]
        assert not get_all(headers, "content-length")
        assert dict(headers)["content-type"].startswith("text/plain")
        received = []
        for i in range(4):
            chunk = reader.chunk()
            assert chunk == f"part-{i};".encode(), received
            received.append(chunk)
            if i < 3:
                assert c.get(f"/release/{tok}").text == "released"
        assert reader.chunk() == b"done"
        assert reader.chunk() == b""
        # keep-alive: the same connection serves the next request
        sock.sendall(raw_request(fl, "GET", "/"))
        status, headers = reader.head()
        assert status == 200
        assert reader.exact(int(dict(headers)["content-length"])) == b"flask says hi"


def test_flask_plain_generator_stream(fl):
    with client(fl) as c, c.stream("GET", "/plain-stream", params={"size": 70_000, "n": 6}) as r:
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        data = r.read()
    assert data == b"".join(bytes([65 + i]) * 70_000 for i in range(6))


def test_flask_send_file_conditional_and_range(fl):
    data = fl.data
    with client(fl) as c:
        response = c.get("/download")
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(data)
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()
        assert response.headers["content-disposition"].startswith("attachment")
        etag = response.headers["etag"]
        # a range request: 206 with exactly those bytes
        response = c.get("/download", headers={"Range": "bytes=100-199"})
        assert response.status_code == 206
        assert response.content == data[100:200]
        assert response.headers["content-range"] == f"bytes 100-199/{len(data)}"
    # 304 on the raw socket: no body, and the connection goes on to the next response
    with fl.connect() as sock:
        sock.sendall(raw_request(fl, "GET", "/download", [("If-None-Match", etag)]) +
                     raw_request(fl, "GET", "/"))
        reader = RawReader(sock)
        status, headers = reader.head()
        assert status == 304
        assert dict(headers)["etag"] == etag
        assert dict(headers).get("content-length", "0") == "0"
        assert "transfer-encoding" not in dict(headers)
        # no body bytes: what follows is the second response
        status, headers = reader.head()
        assert status == 200
        assert reader.exact(int(dict(headers)["content-length"])) == b"flask says hi"


def test_flask_send_file_to_slow_reader(fl):
    """A reader that reads nothing until the server has to wait for it mid-file (the kernel's
    buffers are full, so sendfile() cannot go on), then reads: every byte arrives in order,
    and the connection serves the next request."""
    with slow_reader(fl) as sock:
        sock.sendall(raw_request(fl, "GET", "/download"))
        assert wait_until(lambda: stalled_mid_body(sock, FILE_SIZE), 10), \
            f"the server never stalled mid-file: {tcp_ends(sock)}"
        status, _, _, body = read_response(sock)
        assert status == 200
        assert len(body) == FILE_SIZE
        assert hashlib.sha256(body).digest() == hashlib.sha256(fl.data).digest()
        sock.sendall(raw_request(fl, "GET", "/"))
        status, _, _, body = read_response(sock)
        assert status == 200
        assert body == b"flask says hi"


def test_flask_head_has_no_body(fl):
    with fl.connect() as sock:
        sock.sendall(raw_request(fl, "HEAD", "/download") + raw_request(fl, "GET", "/"))
        reader = RawReader(sock)
        status, headers = reader.head()
        assert status == 200
        assert int(dict(headers)["content-length"]) == FILE_SIZE
        # the next bytes are the second response's head, not file bytes
        status, headers = reader.head()
        assert status == 200
        assert reader.exact(int(dict(headers)["content-length"])) == b"flask says hi"


def test_flask_abort_and_error_handlers(fl):
    with client(fl) as c:
        response = c.get("/missing/3")
        assert response.status_code == 404
        assert "thing 3 is not here" in response.text
        assert response.headers["content-type"].startswith("text/html")
        assert c.get("/missing/0").text == "zero is here"
        assert c.get("/no/such/route").status_code == 404
        response = c.get("/teapot")
        assert response.status_code == 418
        assert response.json() == {"error": "teapot", "code": 418}


def test_flask_unhandled_exception_is_500_with_traceback_logged(fl):
    with client(fl) as c:
        response = c.get("/boom")
        assert response.status_code == 500
        assert "Internal Server Error" in response.text
        # the worker and the connection survive
        assert c.get("/").text == "flask says hi"
    # Flask logs the exception to wsgi.errors, which the server's log prefixes line by line
    # (so not assert_logged_with_traceback, which wants a bare traceback)
    line = fl.wait_for_log(r"ERROR RuntimeError: flask boom marker 7319", 10)
    assert line is not None, fl.log
    lines = fl.log.splitlines()
    end = lines.index(line)
    assert any(text.endswith(" ERROR Traceback (most recent call last):")
               for text in lines[max(0, end - 40):end]), fl.log
    assert "Exception on /boom [GET]" in fl.log


def test_flask_exception_escaping_flask_is_500_from_server(flask_servers):
    """PROPAGATE_EXCEPTIONS: the exception leaves the WSGI app before start_response; the
    server answers 500, logs the traceback and keeps serving."""
    server = flask_servers("propagating")
    with server.connect() as sock:
        sock.sendall(raw_request(server, "GET", "/boom"))
        status, _, _, _ = read_response(sock)
        assert status == 500
    with client(server) as c:
        assert c.get("/ok").text == "fine"
    assert_logged_with_traceback(server, "ValueError: escaped flask marker 4471")


def test_flask_environ_and_url_for(fl):
    with client(fl) as c:
        response = c.get("/environ", params=[("a", "1"), ("a", "2"), ("b", "x y")])
    assert response.status_code == 200
    body = response.json()
    env = body["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&a=2&b=x+y"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(fl.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_HOST"] == f"127.0.0.1:{fl.port}"
    assert env["wsgi.url_scheme"] == "http"
    assert body["wsgi_version"] == [1, 0]
    assert body["multithread"] is True
    assert body["remote_port_is_digit"] is True
    assert body["args"] == {"a": ["1", "2"], "b": ["x y"]}
    assert body["url_for_post"] == "/users/7/posts/hello"
    assert body["url_for_post_external"] == f"http://127.0.0.1:{fl.port}/users/7/posts/hello"
    assert body["script_root"] == ""
    assert body["url"] == f"http://127.0.0.1:{fl.port}/environ?a=1&a=2&b=x+y"


def test_flask_root_path_script_name_and_url_for(flask_servers):
    server = flask_servers("prefixed")
    base = f"http://127.0.0.1:{server.port}"
    with client(server) as c:
        response = c.get("/prefix/environ", params={"q": "1"})
        assert response.status_code == 200
        body = response.json()
        assert body["environ"]["SCRIPT_NAME"] == "/prefix"
        assert body["environ"]["PATH_INFO"] == "/environ"
        assert body["script_root"] == "/prefix"
        assert body["path"] == "/environ"
        assert body["url_for_post"] == "/prefix/users/7/posts/hello"
        assert body["url_for_static"] == "/prefix/files/a/b.txt"
        assert body["url_for_post_external"] == f"{base}/prefix/users/7/posts/hello"
        assert body["url"] == f"{base}/prefix/environ?q=1"
        assert body["url_root"] == f"{base}/prefix/"
        # a redirect built with url_for carries the prefix; following it routes under it
        response = c.get("/prefix/go")
        assert response.status_code == 302
        assert response.headers["location"] == "/prefix/users/1/posts/target"
        response = c.get(response.headers["location"])
        assert response.status_code == 200
        assert response.json() == {"uid": 1, "uid_type": "int", "slug": "target"}


def test_flask_two_set_cookie_headers(fl):
    with fl.connect() as sock:
        sock.sendall(raw_request(fl, "GET", "/cookies/set"))
        status, _, headers_list, _ = read_response(sock)
    assert status == 200
    cookies = get_all(headers_list, "set-cookie")
    assert len(cookies) == 2, headers_list
    flavour = next(v for v in cookies if v.startswith("flavour="))
    count = next(v for v in cookies if v.startswith("count="))
    assert flavour.startswith("flavour=oatmeal;") and "HttpOnly" in flavour
    assert "Max-Age=3600" in count and "SameSite=Lax" in count
    with client(fl) as c:
        response = c.get("/cookies/set")
        assert sorted(v.split(";")[0] for v in response.headers.get_list("set-cookie")) == \
            ["count=3", "flavour=oatmeal"]
        # httpx's jar sends them back
        assert c.get("/cookies/show").json()["cookies"] == {"flavour": "oatmeal", "count": "3"}


def test_flask_repeated_cookie_headers_are_joined(fl):
    """Two Cookie header lines reach the app as one HTTP_COOKIE joined with "; "."""
    with fl.connect() as sock:
        sock.sendall(raw_request(fl, "GET", "/cookies/show",
                                 [("Cookie", "a=1; b=2"), ("Cookie", "c=3")]))
        status, _, _, body = read_response(sock)
    assert status == 200
    result = json.loads(body)
    assert result["cookies"] == {"a": "1", "b": "2", "c": "3"}
    assert result["raw"] == "a=1; b=2; c=3"


def test_flask_signed_session_cookie(fl):
    with client(fl) as c:
        assert [c.get("/session/incr").json()["n"] for _ in range(3)] == [1, 2, 3]
    with client(fl) as fresh:
        assert fresh.get("/session/incr").json()["n"] == 1


# ================================================================================================
# Django
# ================================================================================================
def _django_env(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DJANGO_SETTINGS_MODULE"] = "tests.apps.djangoproj.settings"
    env["BETULA_DJANGO_DB"] = str(db)
    return env


@pytest.fixture(scope="module")
def django_servers(tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("django")
    db = root / "db.sqlite3"
    env = _django_env(db)
    subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
                   env=env, cwd=ROOT, check=True, timeout=60)
    env_pw = dict(env, DJANGO_SUPERUSER_PASSWORD=SUPERUSER[1])
    subprocess.run([sys.executable, "-m", "django", "createsuperuser", "--noinput",
                    "--username", SUPERUSER[0], "--email", "admin@example.com"],
                   env=env_pw, cwd=ROOT, check=True, timeout=60, capture_output=True)
    assert db.exists()
    started: dict[str, ServerProcess] = {}
    variants = {
        "main": ["tests.apps.djangoproj.wsgi:application"],
        "prefixed": ["tests.apps.djangoproj.wsgi:application", "--root-path", "/site"],
    }

    def get(name: str) -> ServerProcess:
        if name not in started:
            server = ServerProcess([*variants[name], "--port", "0"],
                                   env={"DJANGO_SETTINGS_MODULE": env["DJANGO_SETTINGS_MODULE"],
                                        "BETULA_DJANGO_DB": str(db)})
            started[name] = server
            server.start()
        return started[name]

    yield get
    for server in started.values():
        server.stop(signal.SIGINT)


@pytest.fixture
def dj(django_servers) -> ServerProcess:
    return django_servers("main")


CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def test_django_detected_as_wsgi(dj):
    assert re.search(r"\bWSGI\b[^\n]*detected", dj.log), dj.log
    assert re.search(r"serving tests\.apps\.djangoproj\.wsgi:application", dj.log), dj.log


def test_django_model_create_and_list(dj):
    tag = new_id()
    with client(dj) as c:
        ids = []
        for title in (f"first {tag}", f"second {tag} ✓"):
            response = c.post("/notes/api/", json={"title": title, "body": "text"})
            assert response.status_code == 201, response.text
            assert response.json()["title"] == title
            ids.append(response.json()["id"])
        assert ids[1] > ids[0]
        response = c.get("/notes/api/", params={"q": tag})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        listed = response.json()
        assert listed["count"] == 2
        assert [n["title"] for n in listed["notes"]] == [f"first {tag}", f"second {tag} ✓"]
        # the HTML list renders them from the database too
        page = c.get("/notes/")
        assert page.status_code == 200
        assert f"first {tag}" in page.text and f"second {tag} ✓" in page.text
        assert c.post("/notes/api/", content=b"{oops").status_code == 400


def test_django_form_post_with_csrf(dj):
    tag = new_id()
    with client(dj) as c:
        page = c.get("/notes/new/")
        assert page.status_code == 200
        assert "csrftoken" in c.cookies
        hidden = CSRF_INPUT_RE.search(page.text)
        assert hidden, page.text
        response = c.post("/notes/new/", data={"title": f"form {tag}", "body": "from the form",
                                               "csrfmiddlewaretoken": hidden.group(1)})
        assert response.status_code == 302, response.text[:2000]
        assert response.headers["location"] == "/notes/"
        listing = c.get(response.headers["location"])
        assert listing.status_code == 200
        assert f"form {tag}" in listing.text
        # the header form of the token works too (AJAX style)
        response = c.post("/notes/new/", data={"title": f"header {tag}"},
                          headers={"X-CSRFToken": c.cookies["csrftoken"]})
        assert response.status_code == 302
        titles = [n["title"] for n in c.get("/notes/api/", params={"q": tag}).json()["notes"]]
        assert titles == [f"form {tag}", f"header {tag}"]


def test_django_form_invalid_rerenders(dj):
    with client(dj) as c:
        page = c.get("/notes/new/")
        hidden = CSRF_INPUT_RE.search(page.text).group(1)
        response = c.post("/notes/new/", data={"title": "", "csrfmiddlewaretoken": hidden})
    assert response.status_code == 200
    assert "This field is required." in response.text


def test_django_post_without_csrf_token_is_403(dj):
    tag = new_id()
    with client(dj) as c:
        response = c.post("/notes/new/", data={"title": f"nocsrf {tag}"})
        assert response.status_code == 403
        assert "CSRF" in response.text
        # cookie present but no token in the form: still refused
        c.get("/notes/new/")
        assert "csrftoken" in c.cookies
        response = c.post("/notes/new/", data={"title": f"nocsrf {tag}"})
        assert response.status_code == 403
        # a wrong token: refused
        response = c.post("/notes/new/", data={"title": f"nocsrf {tag}",
                                               "csrfmiddlewaretoken": "x" * 64})
        assert response.status_code == 403
        assert c.get("/notes/api/", params={"q": tag}).json()["count"] == 0


def test_django_admin_login_page(dj):
    with client(dj) as c:
        response = c.get("/admin/login/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        text = response.text
        assert "<title>Log in | Django site admin</title>" in text
        assert re.search(r'<form[^>]*id="login-form"', text)
        assert 'name="username"' in text and 'name="password"' in text
        assert CSRF_INPUT_RE.search(text)
        assert "/static/admin/css/base.css" in text
        # the admin index redirects anonymous users to the login page
        response = c.get("/admin/")
        assert response.status_code == 302
        assert response.headers["location"] == "/admin/login/?next=/admin/"


def test_django_admin_login_and_changelist(dj):
    tag = new_id()
    with client(dj) as c:
        assert c.post("/notes/api/", json={"title": f"admin sees {tag}"}).status_code == 201
        page = c.get("/admin/login/", params={"next": "/admin/"})
        hidden = CSRF_INPUT_RE.search(page.text).group(1)
        response = c.post("/admin/login/?next=/admin/",
                          data={"username": SUPERUSER[0], "password": SUPERUSER[1],
                                "csrfmiddlewaretoken": hidden, "next": "/admin/"})
        assert response.status_code == 302, response.text[:3000]
        assert response.headers["location"] == "/admin/"
        assert "sessionid" in c.cookies
        index = c.get("/admin/")
        assert index.status_code == 200
        assert "Site administration" in index.text
        assert "/admin/notes/note/" in index.text
        changelist = c.get("/admin/notes/note/", params={"q": tag})
        assert changelist.status_code == 200
        assert f"admin sees {tag}" in changelist.text


def test_django_404_page(dj):
    with client(dj) as c:
        response = c.get("/definitely/not/here/")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not Found" in response.text
    assert "The requested resource was not found on this server." in response.text


def test_django_disallowed_host_is_400(dj):
    with dj.connect() as sock:
        sock.sendall(b"GET /notes/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        status, _, _, _ = read_response(sock)
    assert status == 400


def test_django_static_head_then_get(dj):
    css = ADMIN_CSS.read_bytes()
    with dj.connect() as sock:
        reader = RawReader(sock)
        sock.sendall(raw_request(dj, "HEAD", "/static/admin/css/base.css"))
        status, headers = reader.head()
        assert status == 200
        headers_d = dict(headers)
        assert int(headers_d["content-length"]) == len(css)
        assert headers_d["content-type"].startswith("text/css")
        last_modified = headers_d["last-modified"]
        # the HEAD sent no body: the very next bytes are the GET's response
        sock.sendall(raw_request(dj, "GET", "/static/admin/css/base.css"))
        status, headers = reader.head()
        assert status == 200
        assert reader.exact(int(dict(headers)["content-length"])) == css
        # conditional GET: 304 with no body, connection still usable
        sock.sendall(raw_request(dj, "GET", "/static/admin/css/base.css",
                                 [("If-Modified-Since", last_modified)]))
        status, headers = reader.head()
        assert status == 304
        assert dict(headers).get("content-length", "0") == "0"
        sock.sendall(raw_request(dj, "GET", "/static/admin/css/nope.css"))
        status, headers = reader.head()
        assert status == 404


def test_django_streaming_response(dj):
    with dj.connect() as sock:
        sock.sendall(raw_request(dj, "GET", "/notes/stream/?n=7"))
        reader = RawReader(sock)
        status, headers = reader.head()
        assert status == 200
        assert get_all(headers, "transfer-encoding") == ["chunked"]
        chunks = []
        while chunk := reader.chunk():
            chunks.append(chunk)
    assert b"".join(chunks) == b"".join(f"line {i}\n".encode() for i in range(7))


def test_django_unhandled_exception_is_500_with_traceback_logged(dj):
    with client(dj) as c:
        response = c.get("/notes/boom/")
        assert response.status_code == 500
        assert "Server Error (500)" in response.text
        assert c.get("/notes/api/").status_code == 200
    assert_logged_with_traceback(dj, "RuntimeError: django boom marker 5521")


def test_django_request_meta(dj):
    with dj.connect() as sock:
        sock.sendall(raw_request(dj, "GET", "/notes/meta/?x=1&x=2&y=%C3%A9",
                                 [("X-Multi", "a"), ("X-Multi", "b")]))
        status, _, _, body = read_response(sock)
    assert status == 200
    result = json.loads(body)
    assert result["meta"]["SCRIPT_NAME"] == ""
    assert result["meta"]["PATH_INFO"] == "/notes/meta/"
    assert result["meta"]["REQUEST_METHOD"] == "GET"
    assert result["meta"]["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert result["meta"]["HTTP_X_MULTI"] == "a, b"
    assert result["get"] == {"x": ["1", "2"], "y": ["é"]}
    assert result["absolute"] == f"http://127.0.0.1:{dj.port}/notes/meta/?x=1&x=2&y=%C3%A9"


def test_django_root_path(django_servers):
    server = django_servers("prefixed")
    tag = new_id()
    with client(server) as c:
        result = c.get("/site/notes/meta/").json()
        assert result["meta"]["SCRIPT_NAME"] == "/site"
        assert result["meta"]["PATH_INFO"] == "/notes/meta/"
        assert result["path"] == "/site/notes/meta/"
        assert result["path_info"] == "/notes/meta/"
        # reverse() and redirects carry the prefix, CSRF works under it
        page = c.get("/site/notes/new/")
        assert page.status_code == 200
        assert 'action="/site/notes/new/"' in page.text
        hidden = CSRF_INPUT_RE.search(page.text).group(1)
        response = c.post("/site/notes/new/", data={"title": f"prefixed {tag}",
                                                    "csrfmiddlewaretoken": hidden})
        assert response.status_code == 302
        assert response.headers["location"] == "/site/notes/"
        assert f"prefixed {tag}" in c.get("/site/notes/").text
        response = c.get("/site/admin/")
        assert response.status_code == 302
        assert response.headers["location"] == "/site/admin/login/?next=/site/admin/"
        login = c.get("/site/admin/login/")
        assert login.status_code == 200
        assert re.search(r'<form action="/site/admin/login/"', login.text), login.text[:3000]


def test_django_access_log_counts_body_bytes(dj):
    """The access line's byte count is the body length (as for ASGI and for list bodies)."""
    path = f"/notes/api/?q=accesslog-{new_id()}"
    with client(dj) as c:
        response = c.get(path)
    assert response.status_code == 200
    line = dj.wait_for_log(re.escape(f'"GET {path} HTTP/1.1" 200 '), 10)
    assert line, dj.log
    logged = int(re.search(r'" 200 (\d+)', line).group(1))
    assert logged == len(response.content), line
