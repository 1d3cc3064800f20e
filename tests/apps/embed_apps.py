"""Apps for tests/test_embed.py: the embedding API (run_asgi, run_wsgi, Embedded, --runner).

In-process tests use the ``make_*`` factories: each returns a fresh app plus the list it
records into, so tests never share state. ``app`` / ``wsgi_app`` are served by the real CLI
(``--runner``) and answer with JSON describing what they saw.

This module deliberately has neither ``run_asgi`` nor ``run_wsgi``: ``--runner
tests.apps.embed_apps`` is the "not a runner" case.
"""

from __future__ import annotations

import asyncio
import copy
import json

# Bumped by tests/apps/embed_counted.py each time that module is executed (imported).
COUNTED_IMPORTS = 0


async def _read_body(receive) -> bytes:
    parts = []
    for _ in range(100_000):
        message = await receive()
        assert message["type"] == "http.request", message
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)
    raise AssertionError("request body never ended")


async def _reply(send, body: bytes, status: int = 200, headers=None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers if headers is not None else
                [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# -- in-process ASGI apps ---------------------------------------------------------------------
def make_recorder():
    """An app that records a deep copy of each scope and the body it received, then replies
    ``201`` with headers given as *lists* (ASGI allows any 2-iterables) and the body echoed."""
    calls: list[dict] = []

    async def app(scope, receive, send):
        body = await _read_body(receive)
        calls.append({"scope": copy.deepcopy(scope), "body": body})
        await send({"type": "http.response.start", "status": 201,
                    "headers": [[b"content-type", b"text/plain"], [b"x-echo", b"yes"]]})
        await send({"type": "http.response.body", "body": b"got:" + body})

    return app, calls


def make_mutating_app():
    """Records a deep copy of the scope as received, then vandalises it (top level and nested)
    the way a careless app or middleware might."""
    seen: list[dict] = []

    async def app(scope, receive, send):
        await _read_body(receive)
        seen.append(copy.deepcopy(scope))
        scope["headers"].append((b"x-leak", b"1"))
        scope["state"]["leak"] = len(seen)
        scope["path"] = "/mutated"
        scope["query_string"] = b"leak=1"
        scope["new-key"] = "leak"
        await _reply(send, b"ok")

    return app, seen


def make_nested_mutating_app():
    """Writes into the scope's nested dicts that are not headers/state: extensions and asgi."""
    seen: list[dict] = []

    async def app(scope, receive, send):
        await _read_body(receive)
        seen.append(copy.deepcopy(scope))
        scope["extensions"]["x-leak"] = {"n": len(seen)}
        scope["asgi"]["x-leak"] = len(seen)
        await _reply(send, b"ok")

    return app, seen


async def streaming_app(scope, receive, send):
    """Streams ten chunks (yielding to the loop between them) after a header-only start."""
    await _read_body(receive)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for i in range(10):
        await send({"type": "http.response.body", "body": f"chunk{i};".encode(),
                    "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": bytearray(b"end"), "more_body": False})


async def raising_app(scope, receive, send):
    raise LookupError("boom from the app")


async def silent_app(scope, receive, send):
    """Returns without ever sending http.response.start."""
    await _read_body(receive)


def make_lifespan_app():
    """An app with a lifespan: startup records itself and puts ``db``/``startups`` in the
    state; each request records the state it saw, then writes a scratch key into it."""
    events: list = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append("startup")
                    scope["state"]["db"] = "connected"
                    scope["state"]["startups"] = events.count("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = await _read_body(receive)
        state = scope.get("state")
        events.append(("request", dict(state) if state is not None else None))
        if state is not None:
            state["scratch"] = body.decode()
        await _reply(send, str((state or {}).get("db")).encode())

    return app, events


# -- in-process WSGI apps ---------------------------------------------------------------------
_ENV_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
             "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme", "wsgi.version",
             "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "custom.key")


def make_wsgi_recorder():
    """Records the environ's standard keys, the body read from wsgi.input (line by line, then
    the rest), and whether wsgi.errors is usable; answers in two chunks."""
    calls: list[dict] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first_line = stream.readline()
        rest = stream.read()
        errors = environ["wsgi.errors"]
        errors.write("embedded error stream works\n")
        errors.writelines(["a\n", "b\n"])
        errors.flush()
        calls.append({
            "env": {k: environ[k] for k in _ENV_KEYS if k in environ},
            "keys": set(environ),
            "body": first_line + rest,
        })
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Path", environ["PATH_INFO"])])
        return [b"hello ", b"", b"world"]

    return app, calls


def wsgi_raising(environ, start_response):
    raise LookupError("boom from the wsgi app")


def wsgi_silent(environ, start_response):
    """Returns an empty body without calling start_response."""
    return []


# -- served by the real CLI (--runner) --------------------------------------------------------
async def app(scope, receive, send):
    """Answers with JSON: path, body, the request's state. Its lifespan puts
    ``started`` in the state, so a served request shows lifespan and runner state together."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read_body(receive)
    payload = {"path": scope["path"], "body": body.decode("latin-1"),
               "state": scope.get("state")}
    data = json.dumps(payload, sort_keys=True, default=repr).encode()
    await _reply(send, data, headers=[(b"content-type", b"application/json"),
                                      (b"content-length", str(len(data)).encode())])


def wsgi_app(environ, start_response):
    """Answers with JSON: PATH_INFO, the body, and the runner's ``custom.key``."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    payload = {"path": environ["PATH_INFO"], "body": body.decode("latin-1"),
               "custom": environ.get("custom.key")}
    data = json.dumps(payload, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
