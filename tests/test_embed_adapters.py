"""The embedding API runs the server's own adapters (issue: "the embedding API drives the
same adapters through an in-memory stream"): ``HTTPCycle`` and ``WSGICycle`` over
``betula/protocols/memory.py``, so every spec rule exists once and holds for embedded calls
too. A rule broken by the app is the app's exception, raised to the caller of run_asgi /
run_wsgi, exactly where the server would log it and answer 500. The contract of the API
itself is tests/test_embed.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from betula import Embedded, arun_asgi, build_environ, build_scope, run_asgi, run_wsgi
from tests.test_embed import guide_environ

from .apps import embed_apps

START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain")]}


def asgi_sending(*messages):
    """An ASGI app that reads the request, then sends ``messages`` in order."""
    async def app(scope, receive, send):
        await receive()
        for message in messages:
            await send(message)
    return app


def test_embedded_asgi_calls_run_the_servers_adapter(monkeypatch):
    from betula.asgi.http import HTTPCycle

    seen = []
    original = HTTPCycle.send

    async def spy(self, message):
        seen.append(message["type"])
        await original(self, message)

    monkeypatch.setattr(HTTPCycle, "send", spy)
    app, _ = embed_apps.make_recorder()
    assert run_asgi(app, {"type": "http", "path": "/"})[0] == 201
    assert asyncio.run(arun_asgi(app, {"type": "http", "path": "/"}))[0] == 201
    assert seen == ["http.response.start", "http.response.body"] * 2


def test_embedded_wsgi_calls_run_the_servers_adapter_in_the_calling_thread(monkeypatch):
    import threading

    from betula.wsgi.http import WSGICycle

    threads = []
    original = WSGICycle._start_response

    def spy(self, status, headers, exc_info=None):
        threads.append(threading.current_thread())
        return original(self, status, headers, exc_info)

    monkeypatch.setattr(WSGICycle, "_start_response", spy)
    app, _ = embed_apps.make_wsgi_recorder()
    assert run_wsgi(app, guide_environ(b""))[2] == b"hello world"
    assert threads == [threading.current_thread()]  # no pool, no hop to a loop


@pytest.mark.parametrize("messages, match", [
    ([{"type": "http.response.body", "body": b"x"}], "before http.response.start"),
    ([START, START], "twice"),
    ([START, {"type": "http.response.body", "body": b"a"},
      {"type": "http.response.body", "body": b"b"}], "after the response completed"),
    ([START, {"type": "http.response.body", "body": b"a"},
      {"type": "http.response.trailers", "headers": []}], "without trailers=True"),
    ([START, {"type": "http.response.early_hint", "links": ["</a.css>; rel=preload"]}],
     "after http.response.start"),
    ([{"type": "http.response.start", "status": "200"}], "invalid status"),
    ([{"type": "http.response.start", "status": 101}], "upgrade"),
    ([{"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"v")]}],
     "header name"),
    ([{"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]}],
     "header value"),
    ([{"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]},
      {"type": "http.response.body", "body": b"too long"}], "longer than its Content-Length"),
    ([{"type": "http.websocket.send"}], "unexpected ASGI message type"),
], ids=["body-before-start", "start-twice", "body-after-complete", "trailers-unannounced",
        "hint-after-start", "status-str", "status-101", "bad-header-name", "bad-header-value",
        "body-over-length", "unknown-message"])
def test_asgi_spec_violations_raise_in_the_app_and_reach_the_caller(messages, match):
    raised = []
    inner = asgi_sending(*messages)

    async def app(scope, receive, send):
        try:
            await inner(scope, receive, send)
        except RuntimeError as exc:
            raised.append(exc)  # raised by send(), inside the app, where the spec says
            raise

    with pytest.raises(RuntimeError, match=match):
        run_asgi(app, {"type": "http", "path": "/"})
    assert len(raised) == 1
    with pytest.raises(RuntimeError, match=match):
        asyncio.run(arun_asgi(asgi_sending(*messages), {"type": "http", "path": "/"}))


def test_asgi_app_returning_with_the_body_unfinished_raises_runtime_error():
    app = asgi_sending(START, {"type": "http.response.body", "body": b"a", "more_body": True})
    with pytest.raises(RuntimeError, match="without completing"):
        run_asgi(app, {"type": "http", "path": "/"})


def test_embedded_errors_are_the_callers_not_logged(caplog):
    with caplog.at_level("DEBUG", logger="betula.error"):
        with pytest.raises(LookupError):
            run_asgi(embed_apps.raising_app, {"type": "http", "path": "/"})
        with pytest.raises(LookupError):
            run_wsgi(embed_apps.wsgi_raising, guide_environ(b""))
        with pytest.raises(RuntimeError):
            run_asgi(embed_apps.silent_app, {"type": "http", "path": "/"})
    assert not [r for r in caplog.records if r.name == "betula.error"], caplog.text


def test_asgi_trailers_early_hints_and_1xx_are_not_in_the_collected_response():
    app = asgi_sending(
        {"type": "http.response.early_hint", "links": ["</style.css>; rel=preload"]},
        {"type": "http.response.start", "status": 103, "headers": [(b"link", b"</x.js>")]},
        {"type": "http.response.start", "status": 200, "trailers": True,
         "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-sum"),
                     (b"connection", b"close")]},
        {"type": "http.response.body", "body": b"part one, ", "more_body": True},
        {"type": "http.response.body", "body": b"part two"},
        {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")], "more_trailers": True},
        {"type": "http.response.trailers", "headers": [(b"x-more", b"2")]},
    )
    status, headers, body = run_asgi(app, {"type": "http", "path": "/",
                                           "headers": [(b"te", b"trailers")]})
    assert status == 200
    # the app's fields, hop-by-hop ones (Trailer, Connection) kept out as HTTP/1 does
    assert headers == [(b"content-type", b"text/plain")]
    assert body == b"part one, part two"


def test_asgi_head_204_and_304_carry_no_body():
    for status, method in ((200, "HEAD"), (204, "GET"), (304, "GET")):
        app = asgi_sending({"type": "http.response.start", "status": status, "headers": []},
                           {"type": "http.response.body", "body": b"not sent"})
        assert run_asgi(app, {"type": "http", "path": "/", "method": method}) == (
            status, [], b""), (status, method)


def test_asgi_pathsend_and_zerocopysend_collect_the_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 1000)

    async def pathsend(scope, receive, send):
        await send(START)
        await send({"type": "http.response.pathsend", "path": str(path)})

    async def zerocopy(scope, receive, send):
        await send(START)
        with open(path, "rb") as fh:
            await send({"type": "http.response.zerocopysend", "file": fh, "offset": 10,
                        "count": 100, "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": fh, "offset": 0,
                        "count": 5})

    assert run_asgi(pathsend, {"type": "http", "path": "/"})[2] == path.read_bytes()
    assert run_asgi(zerocopy, {"type": "http", "path": "/"})[2] == \
        path.read_bytes()[10:110] + path.read_bytes()[:5]


def test_asgi_receive_after_the_body_waits_for_the_end_of_the_response():
    """A listener for http.disconnect (Starlette's StreamingResponse on ASGI < 2.4) is told
    once the response is complete, not before."""
    order = []

    async def app(scope, receive, send):
        await receive()

        async def listen():
            message = await receive()
            order.append(message["type"])

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0)
        await send(START)
        order.append("start")
        await send({"type": "http.response.body", "body": b"done"})
        order.append("body")
        await listener

    assert run_asgi(app, {"type": "http", "path": "/"})[2] == b"done"
    assert order == ["start", "body", "http.disconnect"]


def test_run_asgi_app_that_suspends_and_spawns_tasks():
    """run_asgi takes the app's first step eagerly; an app that really suspends (a timer, a
    thread) or leaves a task behind still runs on a real loop, with a real current task."""
    spawned = []

    async def app(scope, receive, send):
        await receive()
        assert isinstance(asyncio.current_task(), asyncio.Task)
        asyncio.get_running_loop().create_task(asyncio.sleep(0)).add_done_callback(
            lambda task: spawned.append(task.done()))
        await asyncio.sleep(0.001)
        value = await asyncio.get_running_loop().run_in_executor(None, lambda: b"thread")
        await send(START)
        await send({"type": "http.response.body", "body": value})

    for _ in range(3):
        assert run_asgi(app, {"type": "http", "path": "/"})[2] == b"thread"
    assert spawned == [True, True, True]

    async def quick(scope, receive, send):
        await receive()
        assert isinstance(asyncio.current_task(), asyncio.Task)
        asyncio.get_running_loop().call_soon(spawned.append, "callback")
        await send(START)
        await send({"type": "http.response.body", "body": b"quick"})

    assert run_asgi(quick, {"type": "http", "path": "/"})[2] == b"quick"
    assert spawned[-1] == "callback"  # scheduled by the eager step: the loop turned for it


# -- WSGI rules ---------------------------------------------------------------------------
def test_wsgi_headers_are_held_until_the_first_non_empty_chunk():
    import sys

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        yield b""
        # nothing sent yet: exc_info may still replace the status and headers
        try:
            raise KeyError("late failure")
        except KeyError:
            start_response("500 Oops", [("X-Replaced", "yes")], sys.exc_info())
        yield b"error page"

    assert run_wsgi(app, guide_environ(b"")) == ("500 Oops", [("X-Replaced", "yes")],
                                                b"error page")

    def after_head(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"data"
        try:
            raise KeyError("after the head")
        except KeyError:
            start_response("500 Oops", [], sys.exc_info())  # re-raised: the head went out
        yield b"never"

    with pytest.raises(KeyError, match="after the head"):
        run_wsgi(after_head, guide_environ(b""))


def test_wsgi_write_before_start_response_and_start_twice_are_errors():
    def early_body(environ, start_response):
        def body():  # a generator that yields its data before it calls start_response
            yield b"too early"
            start_response("200 OK", [])
        return body()

    with pytest.raises(AssertionError, match="before start_response"):
        run_wsgi(early_body, guide_environ(b""))

    def twice(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    with pytest.raises(AssertionError, match="second time"):
        run_wsgi(twice, guide_environ(b""))


@pytest.mark.parametrize("status, headers, chunks, error, match", [
    ("200", [], [b"x"], ValueError, "invalid WSGI status"),
    ("200 OK", [("Bad Name", "v")], [b"x"], RuntimeError, "header name"),
    ("200 OK", [("X-Split", "a\r\nb")], [b"x"], RuntimeError, "header value"),
    ("200 OK", [("Content-Length", "2")], iter([b"too long"]), RuntimeError,
     "longer than its Content-Length"),
    ("200 OK", [], ["text"], TypeError, "bytes"),
    ("200 OK", [], iter(["text"]), TypeError, "must be bytes"),
    ("200 OK", ("not", "a list"), [b"x"], TypeError, "list"),
], ids=["status", "header-name", "header-value", "over-length", "str-in-list", "str-chunk",
         "headers-tuple"])
def test_wsgi_spec_violations_are_the_apps_exception(status, headers, chunks, error, match):
    def app(environ, start_response):
        start_response(status, headers)
        return chunks

    with pytest.raises(error, match=match):
        run_wsgi(app, guide_environ(b""))


def test_wsgi_close_is_called_and_early_hints_stay_out_of_the_response():
    closed = []

    class Body:
        def __iter__(self):
            yield b"a"
            yield b"b"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
        start_response("203 Custom Phrase", [("X-One", "1"), ("Connection", "close")])
        return Body()

    assert run_wsgi(app, guide_environ(b"")) == ("203 Custom Phrase", [("X-One", "1")], b"ab")
    assert closed == [True]

    def head(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return [b"body"]

    environ = guide_environ(b"")
    environ["REQUEST_METHOD"] = "HEAD"
    assert run_wsgi(head, environ) == ("200 OK", [("Content-Length", "4")], b"")


def test_wsgi_file_wrapper_and_write_callable():
    import tempfile

    with tempfile.TemporaryFile() as fh:
        fh.write(b"0123456789" * 1000)
        fh.seek(5)

        def app(environ, start_response):
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](fh)

        assert run_wsgi(app, guide_environ(b""))[2] == (b"0123456789" * 1000)[5:]

    def writing(environ, start_response):
        write = start_response("200 OK", [("X-W", "1")])
        write(b"written, ")
        return [b"then returned"]

    assert run_wsgi(writing, guide_environ(b"")) == ("200 OK", [("X-W", "1")],
                                                    b"written, then returned")


# -- real frameworks ----------------------------------------------------------------------
def starlette_app():
    import anyio
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    done = []

    async def hello(request):
        task = asyncio.current_task()
        with anyio.CancelScope():  # anyio needs a real task of the running loop
            await anyio.sleep(0)
        return JSONResponse({"path": request.url.path, "query": request.query_params.get("q"),
                             "task": type(task).__name__})

    async def echo(request):
        body = await request.body()
        return PlainTextResponse(body.upper(), background=BackgroundTask(done.append, body))

    async def stream(request):
        async def parts():
            for i in range(3):
                yield f"part{i};"
                await asyncio.sleep(0)
        return StreamingResponse(parts(), media_type="text/plain")

    async def boom(request):
        raise LookupError("starlette boom")

    return Starlette(routes=[Route("/hello", hello), Route("/echo", echo, methods=["POST"]),
                             Route("/stream", stream), Route("/boom", boom)]), done


def test_a_starlette_app_through_run_asgi_and_arun_asgi():
    app, done = starlette_app()
    status, headers, body = run_asgi(app, {"type": "http", "path": "/hello",
                                           "query_string": b"q=1",
                                           "headers": [(b"host", b"example.org")]})
    assert status == 200
    assert (b"content-type", b"application/json") in headers
    assert json.loads(body) == {"path": "/hello", "query": "1", "task": "Task"}
    status, _, body = run_asgi(app, {"type": "http", "path": "/echo", "method": "POST"},
                               b"payload")
    assert (status, body, done) == (200, b"PAYLOAD", [b"payload"])
    assert run_asgi(app, {"type": "http", "path": "/stream"})[2] == b"part0;part1;part2;"
    assert run_asgi(app, {"type": "http", "path": "/nowhere"})[0] == 404
    with pytest.raises(LookupError, match="starlette boom"):
        run_asgi(app, {"type": "http", "path": "/boom"})
    template = build_scope({"type": "http", "path": "/hello"})

    async def many():
        return await asyncio.gather(*(arun_asgi(app, template) for _ in range(5)))

    assert {json.loads(r[2])["task"] for r in asyncio.run(many())} == {"Task"}


def test_a_fastapi_app_with_a_sync_endpoint_through_run_asgi():
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:  # a sync endpoint: FastAPI runs it in a worker thread
        return {"item_id": item_id}

    status, _, body = run_asgi(app, {"type": "http", "path": "/items/7"})
    assert (status, json.loads(body)) == (200, {"item_id": 7})
    assert run_asgi(app, {"type": "http", "path": "/items/x"})[0] == 422
    with Embedded(app) as emb:
        assert json.loads(emb.run_asgi({"type": "http", "path": "/items/8"})[2]) == \
            {"item_id": 8}


def _echo_wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode() + b" " + body]


def test_a_build_environ_template_gives_each_call_its_own_body_and_environ():
    """A built environ reused (as a build_scope template is): each call reads the whole
    body afresh and gets its own environ dict; an app's writes reach no later call."""
    template = build_environ(guide_environ(b"payload"))
    seen = []

    def app(environ, start_response):
        seen.append(environ)
        environ["PATH_INFO"] = "/changed-by-the-app"
        return _echo_wsgi(environ, start_response)

    first = run_wsgi(app, template)
    second = run_wsgi(app, template)
    assert first[2] == second[2] == b"/changed-by-the-app payload"
    assert seen[0] is not seen[1] and seen[0] is not template
    assert template["PATH_INFO"] == "/api/users"
    assert type(seen[0]) is dict  # PEP 3333: a builtin dict


def test_raw_environ_fields_are_validated_on_every_call():
    fields = guide_environ(b"x")
    assert run_wsgi(_echo_wsgi, fields)[2] == b"/api/users x"
    fields["PATH_INFO"] = 42
    with pytest.raises(ValueError, match="PATH_INFO"):
        run_wsgi(_echo_wsgi, fields)


def test_a_template_keeps_its_body_however_many_environs_are_built_meanwhile():
    template = build_environ(guide_environ(b"payload"))
    assert run_wsgi(_echo_wsgi, template)[2] == b"/api/users payload"
    for i in range(1200):  # more than any bounded cache of templates would hold
        build_environ(guide_environ(b"other %d" % i))
    assert run_wsgi(_echo_wsgi, template)[2] == b"/api/users payload"
    assert run_wsgi(_echo_wsgi, template)[2] == b"/api/users payload"


def test_a_wsgi_input_the_caller_puts_in_a_template_is_the_body():
    import io

    template = build_environ(guide_environ(b"payload"))
    template["wsgi.input"] = io.BytesIO(b"replaced")
    template["CONTENT_LENGTH"] = "8"
    assert run_wsgi(_echo_wsgi, template)[2] == b"/api/users replaced"


async def _hello(send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_run_asgi_lets_background_work_and_timers_move_between_eager_calls():
    """Calls that finish in their first step still turn the loop for what apps left behind:
    a task sleeping on a timer, a call_later, a future set from a socket-like callback."""
    log: list[str] = []

    async def background() -> None:
        await asyncio.sleep(0.01)
        log.append("background ran")

    async def app(scope, receive, send):
        loop = asyncio.get_running_loop()
        if scope["path"] == "/start":
            loop.create_task(background())
        elif scope["path"] == "/later":
            loop.call_later(0, log.append, "call_later ran")
        await _hello(send)

    run_asgi(app, build_scope({"type": "http", "path": "/start"}))
    run_asgi(app, build_scope({"type": "http", "path": "/later"}))
    plain = build_scope({"type": "http", "path": "/plain"})
    for _ in range(100_000):  # bounded: stops once both ran (well under a second)
        if len(log) == 2:
            break
        run_asgi(app, plain)
    assert sorted(log) == ["background ran", "call_later ran"]


def test_run_asgi_moves_a_task_that_waits_only_on_a_socket_between_eager_calls():
    """A task the app left waiting on a socket (nothing due, no timer: only the selector
    knows of it) gets its data while later calls keep finishing in their first step."""
    import socket

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await asyncio.get_running_loop().sock_recv(ours, 100))

    async def app(scope, receive, send):
        if scope["path"] == "/listen":
            asyncio.get_running_loop().create_task(reader())
        await _hello(send)

    try:
        run_asgi(app, build_scope({"type": "http", "path": "/listen"}))
        plain = build_scope({"type": "http", "path": "/plain"})
        for _ in range(1000):  # the reader registers its socket with the selector
            run_asgi(app, plain)
        theirs.sendall(b"ping")
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:  # bounded
            run_asgi(app, plain)
        assert got == [b"ping"]
    finally:
        ours.close()
        theirs.close()


def test_the_loop_is_running_inside_an_eager_run_asgi_call():
    seen = []

    async def app(scope, receive, send):
        loop = asyncio.get_running_loop()
        seen.append((loop.is_running(), asyncio.current_task() is not None))
        await _hello(send)

    assert run_asgi(app, build_scope({"type": "http", "path": "/"}))[0] == 200
    assert seen == [(True, True)]
