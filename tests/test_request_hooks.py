"""Request hooks (--on-request, --on-response, --on-error): the real CLI, httpx over
HTTP/1.1 and HTTP/2, ASGI and WSGI apps, plain and streamed responses; a Starlette and a
Flask app; WebSocket untouched; thread and sub-interpreter worker modes; every failure of a
hook (raising, a malformed answer, one that cannot load)."""

from __future__ import annotations

import signal

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.server import ServerProcess, one_error_line, run_cli

ASGI = "tests.apps.request_hook_apps:app"
WSGI = "tests.apps.request_hook_apps:wsgi"
APPS = pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
PROTOCOLS = pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
TOKEN = {"Authorization": "Bearer secret-token"}
PLAIN_500 = "500 Internal Server Error: Internal Server Error\n"


def hook(name: str) -> str:
    return "tests.apps.request_hook_apps:" + name


def client(server: ServerProcess, http2: bool = False) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, http1=not http2, http2=http2, timeout=10)


def seen(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["headers"]


def logged(server: ServerProcess, pattern: str) -> str:
    line = server.wait_for_log(pattern, 10)
    assert line is not None, server.log
    return line


# -- on_request ----------------------------------------------------------------------------
@APPS
@PROTOCOLS
def test_on_request_rejects_a_request_without_a_token(serve, app, http2):
    server = serve(app, "--on-request", hook("require_token"))
    assert ", request hooks)" in server.log  # the startup line says the app has them
    with client(server, http2) as http:
        missing = http.get("/")
        assert missing.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert missing.status_code == 401
        assert missing.text == "Missing authorization header\n"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.headers["content-type"] == "text/plain; charset=utf-8"
        wrong = http.get("/", headers={"Authorization": "Bearer guessed"})
        assert (wrong.status_code, wrong.text) == (401, "Invalid token\n")
        # Let in: the app sees who (and not the X-User-Id the client claimed).
        got = seen(http.get("/", headers={**TOKEN, "X-User-Id": "mallory"}))
        assert got["x-user-id"] == "alice"
        assert got["authorization"] == "Bearer secret-token"
        assert seen(http.get("/health"))["x-user-id"] is None  # a public path
        streamed = http.get("/stream", headers=TOKEN)
        assert (streamed.status_code, streamed.text) == (200, "one,two,three")
        assert http.get("/stream").status_code == 401


@APPS
@PROTOCOLS
def test_a_rejected_request_with_an_unread_body_leaves_the_connection_usable(serve, app,
                                                                             http2):
    server = serve(app, "--on-request", hook("require_token"))
    # (HTTP/2: a body the client sends whole before the answer; httpx cannot take an answer
    # that comes while it is still sending, the stream then being closed.)
    size = 1024 if http2 else 1024 * 1024
    with client(server, http2) as http:
        for _ in range(3):
            rejected = http.post("/upload", content=b"x" * size)
            assert rejected.status_code == 401
        assert seen(http.get("/", headers=TOKEN))["x-user-id"] == "alice"
        head = http.head("/")
        assert head.status_code == 401 and head.content == b""


@APPS
def test_rate_limit_answers_429_after_the_limit_per_client(serve, app):
    server = serve(app, "--on-request", hook("rate_limit"))
    # Loopback is a trusted proxy by default: X-Forwarded-For names the client.
    first = {"X-Forwarded-For": "203.0.113.1"}
    with client(server) as http:
        for _ in range(100):  # LIMIT in the example
            assert http.get("/", headers=first).status_code == 200
        limited = http.get("/", headers=first)
        assert limited.status_code == 429
        assert limited.text == "Too many requests\n"
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert http.get("/", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 200
        assert http.get("/", headers=first).status_code == 429


@APPS
@PROTOCOLS
def test_on_request_adds_a_header_the_app_sees(serve, app, http2):
    server = serve(app, "--on-request", hook("add_request_id"))
    with client(server, http2) as http:
        got = seen(http.get("/", headers={"X-Client": "spoofed"}))
    assert got["x-request-id"] == "req-42"
    assert got["x-client"] == "127.0.0.1"  # set(): the client's own value replaced
    assert got["host"].startswith("127.0.0.1:")  # the others as they came


@APPS
def test_on_request_may_answer_with_a_response_record(serve, app):
    server = serve(app, "--on-request", hook("teapot"), "--on-response", hook("tag_response"))
    with client(server) as http:
        tea = http.get("/tea")
        assert (tea.status_code, tea.text) == (418, "short and stout")
        assert tea.headers["x-teapot"] == "yes"
        assert tea.headers["x-hooked"] == "418 GET /tea"  # on_response sees it too
        assert http.get("/").status_code == 200  # returning the request: go on


# -- on_response ---------------------------------------------------------------------------
@APPS
@PROTOCOLS
@pytest.mark.parametrize("path, body", [("/", None), ("/stream", "one,two,three")])
def test_on_response_adds_a_header(serve, app, http2, path, body):
    server = serve(app, "--on-response", hook("tag_response"))
    with client(server, http2) as http:
        response = http.get(path + "?q=1")
        again = http.get(path)
    assert response.status_code == 200
    assert response.headers["x-hooked"] == f"200 GET {path}"
    if body is not None:
        assert response.text == body
    else:
        assert response.json()["path"] == "/"
    assert again.headers["x-hooked"] == f"200 GET {path}"


@APPS
@pytest.mark.parametrize("path", ["/", "/stream"])
def test_on_response_may_replace_or_remove_headers(serve, app, path):
    server = serve(app, "--on-response", hook("replace_response_headers"))
    with client(server) as http:
        response = http.get(path)
    assert response.status_code == 200
    assert response.headers["x-replaced"] == "yes"
    assert response.headers["content-type"] == "text/plain"
    server = serve(app, "--on-response", hook("drop_content_type"))
    with client(server) as http:
        response = http.get(path)
    assert response.status_code == 200 and "content-type" not in response.headers


@APPS
def test_on_response_tags_the_responses_of_the_other_hooks(serve, app):
    server = serve(app, "--on-request", hook("require_token"),
                   "--on-response", hook("tag_response"), "--on-error", hook("json_error"))
    with client(server) as http:
        rejected = http.get("/secret")
        failed = http.get("/boom", headers=TOKEN)
    assert rejected.status_code == 401 and rejected.headers["x-hooked"] == "401 GET /secret"
    assert failed.status_code == 500 and failed.headers["x-hooked"] == "500 GET /boom"
    assert failed.json()["error"] == "RuntimeError"


@APPS
@pytest.mark.parametrize("path", ["/", "/stream"])
def test_request_state_carries_from_on_request_to_on_response(serve, app, path):
    server = serve(app, env={"BETULA_ON_REQUEST": hook("start_timer"),
                             "BETULA_ON_RESPONSE": hook("timed")})  # (the env vars too)
    with client(server) as http:
        response = http.get(path)
    assert response.status_code == 200
    name, _, duration = response.headers["server-timing"].partition(";dur=")
    assert name == "app" and float(duration) >= 0


# -- on_error ------------------------------------------------------------------------------
@APPS
@PROTOCOLS
def test_on_error_shapes_the_500(serve, app, http2):
    server = serve(app, "--on-error", hook("json_error"))
    paths = ["/boom"] + (["/boom-gen"] if app == WSGI else [])
    with client(server, http2) as http:
        for path in paths:
            response = http.get(path)
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/json"
            assert response.headers["x-error"] == "json"
            assert response.json()["error"] == "RuntimeError"
            assert response.json()["path"] == path
            assert seen(http.get("/")) is not None  # the same connection goes on
    assert response.json()["detail"] in ("the app exploded", "the generator exploded")
    # The app's exception is logged even though on_error answered.
    logged(server, r"Exception in (ASGI|WSGI) application")
    logged(server, r"RuntimeError: the app exploded")


@APPS
def test_on_error_forms_and_none(serve, app):
    server = serve(app, "--on-error", hook("tuple_error"))
    with client(server) as http:
        response = http.get("/boom")
    assert (response.status_code, response.text) == (503, "try again later")
    server = serve(app, "--on-error", hook("no_error_response"))
    with client(server) as http:
        response = http.get("/boom")
    assert (response.status_code, response.text) == (500, PLAIN_500)
    logged(server, r"Exception in (ASGI|WSGI) application")


@APPS
def test_on_error_is_not_called_once_the_response_started(serve, app):
    server = serve(app, "--on-error", hook("json_error"))
    with client(server) as http:
        with pytest.raises(httpx.HTTPError):  # a cut response, as without the hook
            with http.stream("GET", "/late") as response:
                assert response.status_code == 200
                assert "x-error" not in response.headers
                response.read()
    logged(server, r"Exception in (ASGI|WSGI) application")
    logged(server, r"the app exploded after its first chunk")


# -- hooks that fail ----------------------------------------------------------------------
@APPS
@PROTOCOLS
@pytest.mark.parametrize("name, path", [("on_request", "/"), ("on_response", "/"),
                                        ("on_response", "/stream"), ("on_error", "/boom")])
def test_a_hook_that_raises_is_a_500_and_a_logged_traceback(serve, app, http2, name, path):
    flag = "--" + name.replace("_", "-")
    server = serve(app, flag, hook("raising"))
    with client(server, http2) as http:
        response = http.get(path)
        assert (response.status_code, response.text) == (500, PLAIN_500)
        assert "x-hooked" not in response.headers
        if name != "on_error":  # (on_error failing: the default 500 and its closed connection)
            assert http.get(path).status_code == 500  # the connection serves on
    line = logged(server, rf"request hook {name} \(tests\.apps\.request_hook_apps:raising\) "
                          "raised")
    after = server.log.split(line, 1)[1]
    assert "Traceback (most recent call last)" in after
    assert "RuntimeError: the hook exploded" in after
    if name == "on_error":  # and the app's own error, as without the hook
        logged(server, r"Exception in (ASGI|WSGI) application")


@APPS
@pytest.mark.parametrize("flag, name, path, said", [
    ("--on-request", "answer_nonsense", "/", "returned a str, not None, a Response"),
    ("--on-error", "bad_status", "/boom", "returned status 99, not an int from 200 to 999"),
    ("--on-request", "bad_request_headers", "/", "left request.headers: a header value is a "
                                                 "float"),
    ("--on-response", "bad_response_headers", "/stream", "left response.headers: a header "
                                                         "value is not latin-1 text"),
])
def test_a_malformed_answer_is_a_500_and_a_logged_error(serve, app, flag, name, path, said):
    server = serve(app, flag, hook(name))
    with client(server) as http:
        response = http.get(path)
    assert (response.status_code, response.text) == (500, PLAIN_500)
    line = logged(server, rf"request hook {flag[2:].replace('-', '_')} "
                          rf"\(tests\.apps\.request_hook_apps:{name}\)")
    assert said in line and line.endswith("answered 500")


@pytest.mark.parametrize("flag, spec, said", [
    ("--on-request", "tests.apps.no_such_module:hook", "module 'tests.apps.no_such_module' "
                                                       "not found"),
    ("--on-response", hook("no_such_hook"), "attribute 'no_such_hook' not found"),
    ("--on-error", hook("not_callable"), "is not callable (got int)"),
    ("--on-request", hook("takes_nothing"), "must take 1 argument (request)"),
    ("--on-response", hook("raising").split(":")[0], "expected MODULE:FUNCTION"),
])
def test_a_hook_that_cannot_be_loaded_is_one_startup_error_line(flag, spec, said):
    code, out = run_cli(ASGI, "--port", "0", flag, spec)
    assert code != 0
    line = one_error_line(out)
    assert line.startswith("betula: error: ") and said in line, line
    assert flag[2:].replace("-", "_") in line


def test_a_hook_that_cannot_be_loaded_stops_a_master_too():
    code, out = run_cli(WSGI, "--port", "0", "--workers", "2", "--on-request",
                        hook("no_such_hook"))
    assert code == 3, out  # BOOT_FAILED
    assert "betula: error: cannot load request hook on_request=" in out


def test_no_hooks_no_wrapper(serve):
    server = serve(ASGI)
    assert "request hooks" not in server.log
    with client(server) as http:
        response = http.get("/")
    assert response.status_code == 200 and "x-hooked" not in response.headers


# -- async hooks ---------------------------------------------------------------------------
@APPS
@PROTOCOLS
def test_async_hooks(serve, app, http2):
    server = serve(app, "--on-request", hook("async_require_token"),
                   "--on-response", hook("async_tag_response"),
                   "--on-error", hook("async_json_error"))
    with client(server, http2) as http:
        assert http.get("/").status_code == 401
        response = http.get("/stream", headers=TOKEN)
        boom = http.get("/boom", headers=TOKEN)
    assert (response.status_code, response.text) == (200, "one,two,three")
    running, thread = response.headers["x-async"].split(" ", 1)
    assert running == "True"
    # A WSGI app's async hooks run on the worker's event loop, not in the app's thread.
    assert not thread.startswith("betula-wsgi")
    assert boom.status_code == 500 and boom.json()["detail"] == "the app exploded"


# -- frameworks, WebSocket -----------------------------------------------------------------
@pytest.mark.parametrize("app", ["tests.apps.request_hook_frameworks:starlette_app",
                                 "tests.apps.request_hook_frameworks:flask_app"],
                         ids=["starlette", "flask"])
def test_a_framework_app_behind_the_hooks(serve, app):
    server = serve(app, "--on-request", hook("require_token"),
                   "--on-response", hook("tag_response"))
    with client(server) as http:
        rejected = http.get("/")
        allowed = http.get("/", headers=TOKEN)
        streamed = http.get("/stream", headers=TOKEN)
    assert rejected.status_code == 401
    assert allowed.status_code == 200 and allowed.json() == {"user": "alice", "path": "/"}
    assert allowed.headers["x-hooked"] == "200 GET /"
    assert (streamed.status_code, streamed.text) == (200, "one,two,three")
    assert streamed.headers["x-hooked"] == "200 GET /stream"


def test_a_websocket_goes_through_untouched(serve):
    server = serve(ASGI, "--on-request", hook("require_token"),
                   "--on-response", hook("tag_response"), "--on-error", hook("raising"))
    with ws_connect(f"ws://{server.host}:{server.port}/ws") as ws:  # (no token: not asked)
        assert "x-hooked" not in ws.response.headers
        ws.send("hi")
        assert ws.recv(timeout=10) == "echo:hi"
    with client(server) as http:
        rejected = http.get("/")  # while HTTP requests are hooked
    assert rejected.status_code == 401 and rejected.headers["x-hooked"] == "401 GET /"
    assert "raised" not in server.log


# -- worker modes --------------------------------------------------------------------------
def check_modes_app(server: ServerProcess) -> None:
    """tests.apps.thread_apps behind require_token, tag_response and json_error."""
    with client(server) as http:
        assert http.get("/").status_code == 401
        allowed = http.get("/", headers=TOKEN)
        boom = http.get("/boom", headers=TOKEN)
    assert allowed.status_code == 200 and allowed.headers["x-hooked"] == "200 GET /"
    assert boom.status_code == 500
    error = boom.json()
    assert error["error"] == "RuntimeError" and error["path"] == "/boom"
    # (a sub-interpreter's error reaches the host with the guest's traceback in its text)
    assert error["detail"].startswith(("boom", "RuntimeError: boom"))


MODE_HOOKS = ("--on-request", hook("require_token"), "--on-response", hook("tag_response"),
              "--on-error", hook("json_error"))


@pytest.mark.parametrize("app", ["tests.apps.thread_apps:app", "tests.apps.thread_apps:wsgi"],
                         ids=["asgi", "wsgi"])
def test_thread_mode(serve, app):
    # (--allow-gil: the hooks' wiring, not parallelism, is what is tested here)
    server = serve(app, "--worker-mode", "thread", "--workers", "2", "--allow-gil",
                   *MODE_HOOKS)
    assert server.wait_for_log(r"All \d+ worker threads serving", 30), server.log
    check_modes_app(server)


@pytest.mark.parametrize("app", ["tests.apps.thread_apps:app", "tests.apps.thread_apps:wsgi"],
                         ids=["asgi", "wsgi"])
def test_subinterpreter_mode(app):
    from tests.test_subinterpreter_mode import start

    server = start(app, *MODE_HOOKS)
    try:
        assert "sub-interpreters, request hooks)" in server.log
        check_modes_app(server)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log  # (the interpreters closed)

