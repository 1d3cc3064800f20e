"""The embedding API of issue 3 ("Embedding API"): ``run_asgi`` / ``arun_asgi`` /
``run_wsgi``, ``build_scope`` / ``build_environ``, custom runners (``default_asgi_handler`` /
``default_wsgi_handler``), ``Embedded`` with its lifespan, and ``--runner MODULE`` on the CLI.

The contract is the field tables of /work/shared/seeds/erlang-python-web-frameworks-guide.md
(Scope Fields, Environ Fields) and its Custom Runner Modules examples, which live verbatim in
tests/apps/custom_asgi_runner.py and tests/apps/custom_wsgi_runner.py (plus one import line).
The apps are in tests/apps/embed_apps.py. Most tests call the API in-process; the ``--runner``
tests start the real CLI and talk to it over a socket.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import re
import sys
import warnings

import pytest

import betula
import betula.embed
from betula import (
    Embedded,
    arun_asgi,
    build_environ,
    build_scope,
    default_asgi_handler,
    default_wsgi_handler,
    run_asgi,
    run_wsgi,
)
from tests.support.wire import read_response

from .apps import embed_apps

ASGI_RUNNER = "tests.apps.custom_asgi_runner"
WSGI_RUNNER = "tests.apps.custom_wsgi_runner"


def guide_environ(body: bytes = b"") -> dict:
    """The guide's WSGI "Basic Usage" environ, in Python: the minimal fields only."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/api/users",
        "QUERY_STRING": "id=123",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
    }


def http_get(server, target: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    method = "POST" if body else "GET"
    with server.connect() as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        status, headers, _, data = read_response(sock)
    return status, headers, data


# -- the public names -------------------------------------------------------------------------
def test_embedding_api_is_reexported_at_top_level():
    for name in ("run_asgi", "arun_asgi", "run_wsgi", "build_scope", "build_environ",
                 "Embedded", "default_asgi_handler", "default_wsgi_handler"):
        assert getattr(betula, name) is getattr(betula.embed, name), name
        assert name in betula.__all__, name
    assert asyncio.iscoroutinefunction(default_asgi_handler)
    assert asyncio.iscoroutinefunction(arun_asgi)


# -- run_asgi ---------------------------------------------------------------------------------
def test_run_asgi_with_a_callable_returns_int_bytes_pairs_and_bytes():
    app, calls = embed_apps.make_recorder()
    result = run_asgi(app, {"type": "http", "path": "/hello", "method": "POST"}, b"payload")
    assert isinstance(result, tuple) and len(result) == 3
    status, headers, body = result
    assert type(status) is int and status == 201
    # the app sent its headers as [name, value] *lists*: the result has (bytes, bytes) tuples
    assert isinstance(headers, list)
    assert headers == [(b"content-type", b"text/plain"), (b"x-echo", b"yes")]
    assert all(type(h) is tuple and type(h[0]) is bytes and type(h[1]) is bytes
               for h in headers)
    assert type(body) is bytes and body == b"got:payload"
    assert len(calls) == 1
    assert calls[0]["body"] == b"payload"
    assert calls[0]["scope"]["path"] == "/hello"
    assert calls[0]["scope"]["method"] == "POST"


def test_request_body_reaches_the_app_whole():
    app, calls = embed_apps.make_recorder()
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    status, _, body = run_asgi(app, {"type": "http", "path": "/up", "method": "PUT"}, big)
    assert status == 201
    assert calls[0]["body"] == big
    assert body == b"got:" + big
    # bytearray / memoryview bodies are accepted too; an absent body is b""
    run_asgi(app, {"type": "http", "path": "/"}, bytearray(b"ba"))
    run_asgi(app, {"type": "http", "path": "/"}, memoryview(b"mv"))
    run_asgi(app, {"type": "http", "path": "/"})
    assert [c["body"] for c in calls[1:]] == [b"ba", b"mv", b""]


def test_run_asgi_with_a_module_string_imports_once_and_caches():
    spec = "tests.apps.embed_counted:app"
    sys.modules.pop("tests.apps.embed_counted", None)
    before = embed_apps.COUNTED_IMPORTS
    try:
        bodies = {run_asgi(spec, {"type": "http", "path": f"/{i}"})[2] for i in range(20)}
        assert embed_apps.COUNTED_IMPORTS == before + 1, "imported more than once"
        assert bodies == {f"import #{before + 1}".encode()}
        # cached by run_asgi itself, not merely by sys.modules: even with the module dropped
        # from sys.modules the string keeps resolving to the app already loaded
        sys.modules.pop("tests.apps.embed_counted", None)
        for i in range(5):
            status, _, body = run_asgi(spec, {"type": "http", "path": f"/again/{i}"})
            assert (status, body) == (200, f"import #{before + 1}".encode())
        assert embed_apps.COUNTED_IMPORTS == before + 1, "re-imported: the app is not cached"
    finally:
        sys.modules.pop("tests.apps.embed_counted", None)


def test_run_asgi_with_a_bad_app_string_fails_clearly():
    with pytest.raises(Exception) as info:
        run_asgi("tests.apps.no_such_module_here:app", {"type": "http", "path": "/"})
    assert "no_such_module_here" in str(info.value)


def test_streaming_response_is_collected_whole():
    status, headers, body = run_asgi(embed_apps.streaming_app, {"type": "http", "path": "/s"})
    assert status == 200
    assert headers == [(b"content-type", b"text/plain")]
    assert type(body) is bytes
    assert body == b"".join(f"chunk{i};".encode() for i in range(10)) + b"end"


def test_arun_asgi_works_inside_a_running_loop():
    app, calls = embed_apps.make_recorder()

    async def main():
        first = await arun_asgi(app, {"type": "http", "path": "/a"}, b"one")
        # several concurrent calls on the same loop do not mix their bodies
        rest = await asyncio.gather(*(arun_asgi(app, {"type": "http", "path": f"/c{i}"},
                                                f"b{i}".encode()) for i in range(5)))
        streamed = await arun_asgi(embed_apps.streaming_app, {"type": "http", "path": "/s"})
        return first, rest, streamed

    first, rest, streamed = asyncio.run(main())
    assert first == (201, [(b"content-type", b"text/plain"), (b"x-echo", b"yes")], b"got:one")
    assert [r[2] for r in rest] == [f"got:b{i}".encode() for i in range(5)]
    assert streamed[2].endswith(b"chunk9;end")
    assert sorted(c["scope"]["path"] for c in calls) == ["/a"] + [f"/c{i}" for i in range(5)]


def test_run_asgi_inside_a_running_loop_raises_a_clear_runtime_error():
    app, calls = embed_apps.make_recorder()

    async def main():
        with pytest.raises(RuntimeError) as info:
            run_asgi(app, {"type": "http", "path": "/"}, b"x")
        return str(info.value)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = asyncio.run(main())
        gc.collect()
    assert "arun_asgi" in message, message  # it says what to use instead
    # the refused call's coroutine is closed, not left "never awaited"
    assert not [w for w in caught if "never awaited" in str(w.message)], caught
    assert calls == [], "the app ran although run_asgi refused"
    # and the synchronous form still works afterwards, outside the loop
    assert run_asgi(app, {"type": "http", "path": "/after"})[0] == 201


# -- scope defaults and validation ------------------------------------------------------------
def test_minimal_scope_gets_the_defaults():
    app, calls = embed_apps.make_recorder()
    run_asgi(app, {"type": "http", "path": "/caf\u00e9/x"})
    scope = calls[0]["scope"]
    assert scope["type"] == "http"
    assert isinstance(scope["asgi"], dict) and scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == ""
    assert scope["path"] == "/caf\u00e9/x"
    assert isinstance(scope["raw_path"], bytes)
    assert scope["raw_path"] == "/caf\u00e9/x".encode()
    assert scope["query_string"] == b""
    assert scope["headers"] == []
    assert scope["state"] == {}
    assert isinstance(scope.get("extensions", {}), dict)


def test_given_scope_fields_are_kept():
    app, calls = embed_apps.make_recorder()
    fields = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.0", "method": "DELETE", "scheme": "https", "path": "/a b",
        "raw_path": b"/a%20b", "query_string": b"x=1&y=2", "root_path": "/mnt",
        "headers": [[b"host", b"example.org"], [b"x-token", b"t"]],
        "server": ("10.0.0.1", 8443), "client": ("10.0.0.2", 50000),
        "state": {"user": "alice"}, "extensions": {"x-thing": {}},
    }
    run_asgi(app, fields)
    scope = calls[0]["scope"]
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "DELETE"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1&y=2"
    assert scope["root_path"] == "/mnt"
    assert [tuple(h) for h in scope["headers"]] == [(b"host", b"example.org"), (b"x-token", b"t")]
    assert tuple(scope["server"]) == ("10.0.0.1", 8443)
    assert tuple(scope["client"]) == ("10.0.0.2", 50000)
    assert scope["state"] == {"user": "alice"}
    assert "x-thing" in scope["extensions"]


@pytest.mark.parametrize("fields, field", [
    ({"path": "/"}, "type"),
    ({"type": "http"}, "path"),
    ({"type": "http", "path": 123}, "path"),
    ({"type": "http", "path": "/", "headers": [b"host"]}, "headers"),
    ({"type": "http", "path": "/", "headers": [(b"host", b"x", b"extra")]}, "headers"),
    ({"type": "http", "path": "/", "headers": [(b"host", 5)]}, "headers"),
    ({"type": "http", "path": "/", "client": ("127.0.0.1",)}, "client"),
    ({"type": "http", "path": "/", "client": "127.0.0.1:5000"}, "client"),
    ({"type": "http", "path": "/", "server": ("h", "port")}, "server"),
    ({"type": "http", "path": "/", "state": ["not", "a", "dict"]}, "state"),
    ({"type": "http", "path": "/", "query_string": 12}, "query_string"),
], ids=["no-type", "no-path", "path-int", "headers-not-pairs", "headers-triple",
        "header-value-int", "client-1-tuple", "client-str", "server-port-str", "state-list",
        "query-int"])
def test_scope_validation_names_the_field(fields, field):
    app, calls = embed_apps.make_recorder()
    pattern = rf"\b{re.escape(field)}\b"
    with pytest.raises(ValueError, match=pattern):
        run_asgi(app, fields)
    with pytest.raises(ValueError, match=pattern):
        build_scope(fields)
    assert calls == [], "the app ran with an invalid scope"


# -- build_scope: a reusable template ---------------------------------------------------------
def test_build_scope_template_is_complete_and_reusable():
    template = build_scope({"type": "http", "path": "/items", "method": "POST",
                            "headers": [(b"content-type", b"text/plain")]})
    assert template["http_version"] == "1.1" and template["scheme"] == "http"
    assert template["root_path"] == "" and template["raw_path"] == b"/items"
    app, calls = embed_apps.make_recorder()
    for i in range(50):
        status, _, body = run_asgi(app, template, f"n{i}".encode())
        assert (status, body) == (201, f"got:n{i}".encode())
    assert len(calls) == 50
    assert all(c["scope"]["path"] == "/items" and c["scope"]["method"] == "POST"
               for c in calls)


def test_app_mutations_do_not_leak_between_calls_with_a_template():
    template = build_scope({"type": "http", "path": "/t", "query_string": b"q=1",
                            "headers": [(b"host", b"h")], "state": {"tenant": "a"}})
    pristine = copy.deepcopy(dict(template))
    app, seen = embed_apps.make_mutating_app()
    for _ in range(5):
        assert run_asgi(app, template)[0] == 200
    for scope in seen:
        assert scope["headers"] == [(b"host", b"h")], "appended header leaked"
        assert scope["state"] == {"tenant": "a"}, "state written by the app leaked"
        assert scope["path"] == "/t"
        assert scope["query_string"] == b"q=1"
        assert "new-key" not in scope
    assert dict(template) == pristine, "the template itself was changed by the app"


def test_template_shared_by_threads():
    """run_asgi is synchronous: several threads may call it at once with one template."""
    from concurrent.futures import ThreadPoolExecutor

    template = build_scope({"type": "http", "path": "/mt", "state": {"k": "v"}})
    app, calls = embed_apps.make_recorder()

    def call(i):
        return run_asgi(app, template, f"t{i}".encode())[2]

    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(call, range(40)))
    assert bodies == [f"got:t{i}".encode() for i in range(40)]
    assert len(calls) == 40 and all(c["scope"]["state"] == {"k": "v"} for c in calls)


def test_app_mutations_do_not_leak_with_a_plain_dict_scope():
    fields = {"type": "http", "path": "/p", "headers": [(b"host", b"h")], "state": {"k": 1}}
    pristine = copy.deepcopy(fields)
    app, seen = embed_apps.make_mutating_app()
    for _ in range(3):
        run_asgi(app, fields)
    assert all(s["headers"] == [(b"host", b"h")] and s["state"] == {"k": 1} for s in seen)
    assert fields == pristine, "the caller's scope dict was changed by the app"


def test_nested_scope_dicts_do_not_leak_between_calls_with_a_template():
    template = build_scope({"type": "http", "path": "/n", "extensions": {"x-given": {}}})
    pristine = copy.deepcopy(dict(template))
    app, seen = embed_apps.make_nested_mutating_app()
    for _ in range(3):
        assert run_asgi(app, template)[0] == 200
    for scope in seen:
        assert scope["extensions"] == {"x-given": {}}, "extensions written by the app leaked"
        assert "x-leak" not in scope["asgi"], "asgi written by the app leaked"
    assert dict(template) == pristine, "the template itself was changed by the app"


# -- run_wsgi ---------------------------------------------------------------------------------
def test_run_wsgi_with_the_guides_minimal_environ():
    app, calls = embed_apps.make_wsgi_recorder()
    status, headers, body = run_wsgi(app, guide_environ(b"line one\nline two"))
    assert type(status) is str and status == "200 OK"
    assert isinstance(headers, list)
    assert headers == [("Content-Type", "text/plain"), ("X-Path", "/api/users")]
    assert all(type(h) is tuple and type(h[0]) is str and type(h[1]) is str for h in headers)
    assert type(body) is bytes and body == b"hello world"
    # wsgi.input given as bytes reads back as a stream (readline, then read)
    assert calls[0]["body"] == b"line one\nline two"
    env = calls[0]["env"]
    assert env["PATH_INFO"] == "/api/users" and env["QUERY_STRING"] == "id=123"
    assert env["SERVER_PORT"] == "8080" and env["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_run_wsgi_fills_the_environ_defaults():
    app, calls = embed_apps.make_wsgi_recorder()
    environ = guide_environ(b"")
    del environ["QUERY_STRING"]
    assert run_wsgi(app, environ)[0] == "200 OK"
    env, keys = calls[0]["env"], calls[0]["keys"]
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["QUERY_STRING"] == ""
    assert "wsgi.errors" in keys  # and the app wrote to it without error
    assert calls[0]["body"] == b""


def test_run_wsgi_with_a_module_string_and_build_environ():
    environ = guide_environ(b"abc")
    environ["REQUEST_METHOD"] = "POST"
    environ["CONTENT_LENGTH"] = "3"
    status, headers, body = run_wsgi("tests.apps.embed_apps:wsgi_app", environ)
    assert status == "200 OK"
    assert json.loads(body) == {"path": "/api/users", "body": "abc", "custom": None}
    full = build_environ(guide_environ(b"xyz"))
    assert full["wsgi.version"] == (1, 0) and full["wsgi.input"].read() == b"xyz"
    for name in ("wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert name in full, name


@pytest.mark.parametrize("field", ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME",
                                   "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme",
                                   "wsgi.input"])
def test_environ_missing_required_field_names_it(field):
    app, calls = embed_apps.make_wsgi_recorder()
    environ = guide_environ(b"")
    del environ[field]
    with pytest.raises(ValueError, match=re.escape(field)):
        run_wsgi(app, environ)
    with pytest.raises(ValueError, match=re.escape(field)):
        build_environ(environ)
    assert calls == []


@pytest.mark.parametrize("field, value", [
    ("REQUEST_METHOD", 123), ("PATH_INFO", None), ("wsgi.input", 42),
])
def test_environ_wrong_type_names_the_field(field, value):
    app, calls = embed_apps.make_wsgi_recorder()
    environ = guide_environ(b"")
    environ[field] = value
    with pytest.raises(ValueError, match=re.escape(field)):
        run_wsgi(app, environ)
    assert calls == []


# -- custom runners ---------------------------------------------------------------------------
def test_guides_asgi_runner_module_by_name():
    app, calls = embed_apps.make_recorder()
    status, headers, body = run_asgi(app, {"type": "http", "path": "/r"}, b"rb",
                                     runner=ASGI_RUNNER)
    assert (status, body) == (201, b"got:rb")
    assert headers == [(b"content-type", b"text/plain"), (b"x-echo", b"yes")]
    assert calls[0]["scope"]["state"]["custom_key"] == "value"
    # with a template: the runner's write to state does not stick to the template
    template = build_scope({"type": "http", "path": "/r"})
    run_asgi(app, template, runner=ASGI_RUNNER)
    assert calls[1]["scope"]["state"] == {"custom_key": "value"}
    assert template["state"] == {}
    # and without a runner the key is not there
    run_asgi(app, template)
    assert "custom_key" not in calls[2]["scope"]["state"]


def test_runner_module_object_and_plain_object():
    import tests.apps.custom_asgi_runner as module

    app, calls = embed_apps.make_recorder()
    run_asgi(app, {"type": "http", "path": "/m"}, runner=module)
    assert calls[-1]["scope"]["state"]["custom_key"] == "value"

    class Wrapping:
        """Pre- and post-processing around the default handler."""

        def __init__(self):
            self.seen = []

        async def run_asgi(self, app, scope, body):
            self.seen.append(scope["path"])
            scope["state"]["who"] = "object"
            status, headers, out = await default_asgi_handler(app, scope, body.upper())
            return status + 1, headers + [(b"x-runner", b"object")], out + b"!"

    runner = Wrapping()
    status, headers, body = run_asgi(app, {"type": "http", "path": "/o"}, b"abc",
                                     runner=runner)
    assert status == 202
    assert headers[-1] == (b"x-runner", b"object")
    assert body == b"got:ABC!"
    assert runner.seen == ["/o"]
    assert calls[-1]["scope"]["state"]["who"] == "object"
    assert calls[-1]["body"] == b"ABC"


def test_guides_wsgi_runner_module_and_object():
    app, calls = embed_apps.make_wsgi_recorder()
    environ = guide_environ(b"w")
    status, _, body = run_wsgi(app, environ, runner=WSGI_RUNNER)
    assert (status, body) == ("200 OK", b"hello world")
    assert calls[0]["env"]["custom.key"] == "value"
    assert environ == guide_environ(b"w"), "the caller's environ was changed"

    class Wrapping:
        def run_wsgi(self, app, environ):
            environ["custom.key"] = "object"
            status, headers, out = default_wsgi_handler(app, environ)
            return status, headers + [("X-Runner", "object")], out.upper()

    status, headers, body = run_wsgi(app, guide_environ(b""), runner=Wrapping())
    assert status == "200 OK"
    assert headers[-1] == ("X-Runner", "object")
    assert body == b"HELLO WORLD"
    assert calls[1]["env"]["custom.key"] == "object"
    run_wsgi(app, guide_environ(b""))
    assert "custom.key" not in calls[2]["env"]


def test_runner_with_only_the_other_interface_leaves_the_default_path():
    """A runner has run_asgi "and/or" run_wsgi: the missing one means the default handler."""
    wsgi, wcalls = embed_apps.make_wsgi_recorder()
    assert run_wsgi(wsgi, guide_environ(b""), runner=ASGI_RUNNER) == (
        "200 OK", [("Content-Type", "text/plain"), ("X-Path", "/api/users")], b"hello world")
    assert "custom.key" not in wcalls[0]["env"]
    asgi, acalls = embed_apps.make_recorder()
    assert run_asgi(asgi, {"type": "http", "path": "/"}, runner=WSGI_RUNNER)[0] == 201
    assert acalls[0]["scope"]["state"] == {}


# -- Embedded and the lifespan ----------------------------------------------------------------
def test_run_asgi_does_not_run_the_lifespan():
    app, events = embed_apps.make_lifespan_app()
    for _ in range(3):
        assert run_asgi(app, {"type": "http", "path": "/"})[2] == b"None"
    assert "startup" not in events and "shutdown" not in events
    assert [e[1] for e in events] == [{}, {}, {}]


def test_embedded_without_lifespan_does_not_run_it():
    app, events = embed_apps.make_lifespan_app()
    emb = Embedded(app)
    try:
        for _ in range(3):
            assert emb.run_asgi({"type": "http", "path": "/"})[0] == 200
    finally:
        emb.close()
    assert "startup" not in events and "shutdown" not in events
    assert all(e[1] == {} for e in events)


def test_embedded_lifespan_startup_once_state_everywhere_shutdown_on_close():
    app, events = embed_apps.make_lifespan_app()
    emb = Embedded(app, lifespan=True)
    template = build_scope({"type": "http", "path": "/t"})
    for i in range(10):
        status, _, body = emb.run_asgi(template if i % 2 else {"type": "http", "path": "/"},
                                       f"req{i}".encode())
        assert (status, body) == (200, b"connected")
    assert events.count("startup") == 1
    assert "shutdown" not in events
    requests = [e[1] for e in events if isinstance(e, tuple)]
    assert len(requests) == 10
    # the startup state reaches every scope; a request's write to it does not reach the next
    assert all(s == {"db": "connected", "startups": 1} for s in requests), requests
    emb.close()
    assert events[-1] == "shutdown" and events.count("shutdown") == 1


def test_embedded_as_a_context_manager():
    app, events = embed_apps.make_lifespan_app()
    with Embedded(app, lifespan=True) as emb:
        assert events == ["startup"]  # entering starts it
        for _ in range(3):
            assert emb.run_asgi({"type": "http", "path": "/"})[2] == b"connected"
        assert "shutdown" not in events
    assert events.count("startup") == 1
    assert events[-1] == "shutdown"


def test_embedded_with_a_runner_and_module_string():
    with Embedded("tests.apps.embed_apps:app", lifespan=True, runner=ASGI_RUNNER) as emb:
        status, _, body = emb.run_asgi({"type": "http", "path": "/e"}, b"hi")
    assert status == 200
    payload = json.loads(body)
    assert payload["body"] == "hi"
    assert payload["state"] == {"started": "yes", "custom_key": "value"}


# -- errors from the app ----------------------------------------------------------------------
def test_asgi_app_exception_propagates():
    with pytest.raises(LookupError, match="boom from the app"):
        run_asgi(embed_apps.raising_app, {"type": "http", "path": "/"})
    with pytest.raises(LookupError, match="boom from the app"):
        asyncio.run(arun_asgi(embed_apps.raising_app, {"type": "http", "path": "/"}))
    # the embedding API is still usable afterwards
    assert run_asgi(embed_apps.streaming_app, {"type": "http", "path": "/"})[0] == 200


def test_wsgi_app_exception_propagates():
    with pytest.raises(LookupError, match="boom from the wsgi app"):
        run_wsgi(embed_apps.wsgi_raising, guide_environ(b""))


def test_asgi_app_that_never_starts_a_response_raises_runtime_error():
    with pytest.raises(RuntimeError):
        run_asgi(embed_apps.silent_app, {"type": "http", "path": "/"})


def test_wsgi_app_that_never_calls_start_response_raises_runtime_error():
    with pytest.raises(RuntimeError):
        run_wsgi(embed_apps.wsgi_silent, guide_environ(b""))


# -- --runner on the real CLI -----------------------------------------------------------------
def test_cli_runner_asgi_served_requests_go_through_the_runner(serve):
    server = serve("tests.apps.embed_apps:app", "--runner", ASGI_RUNNER)
    for i in range(3):
        status, headers, body = http_get(server, f"/served/{i}", f"body{i}".encode())
        assert status == 200, body
        payload = json.loads(body)
        assert payload["path"] == f"/served/{i}"
        assert payload["body"] == f"body{i}"
        # the runner's pre-processing and the app's lifespan state, together
        assert payload["state"] == {"started": "yes", "custom_key": "value"}
    # one code path: the embedded call through the same runner sees the same thing
    _, _, embedded = run_asgi("tests.apps.embed_apps:app",
                              {"type": "http", "path": "/served/0", "state": {"started": "yes"}},
                              b"body0", runner=ASGI_RUNNER)
    assert json.loads(embedded) == json.loads(http_get(server, "/served/0", b"body0")[2])


def test_cli_runner_wsgi_served_requests_go_through_the_runner(serve):
    server = serve("tests.apps.embed_apps:wsgi_app", "--runner", WSGI_RUNNER)
    status, _, body = http_get(server, "/w", b"posted")
    assert status == 200, body
    assert json.loads(body) == {"path": "/w", "body": "posted", "custom": "value"}


def test_cli_asgi_only_runner_leaves_a_wsgi_app_on_the_default_path(serve):
    """Embedded, run_wsgi with an ASGI-only runner uses the default handler (see
    test_runner_with_only_the_other_interface_leaves_the_default_path); served traffic goes
    the same way: the WSGI app answers normally."""
    server = serve("tests.apps.embed_apps:wsgi_app", "--runner", ASGI_RUNNER)
    status, _, body = http_get(server, "/w", b"x")
    assert status == 200, body
    assert json.loads(body) == {"path": "/w", "body": "x", "custom": None}


@pytest.mark.parametrize("runner, reason", [
    ("tests.apps.embed_apps", r"run_asgi.*run_wsgi|run_wsgi.*run_asgi"),
    ("tests.apps.no_such_runner_module", r"no_such_runner_module"),
], ids=["neither-function", "missing-module"])
def test_cli_bad_runner_is_refused_at_startup_with_one_line(serve, runner, reason):
    server = serve("tests.apps.embed_apps:app", "--runner", runner, wait=False)
    code = server.wait_exit(timeout=20)
    log = server.log
    assert code != 0, log
    assert "serving" not in log.lower(), log
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if runner in line]
    assert len(lines) == 1, log
    assert re.search(r"runner", lines[0], re.IGNORECASE), lines[0]
    assert re.search(reason, lines[0]), lines[0]
