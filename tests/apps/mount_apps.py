"""Apps for the multi-app mount tests (tests/test_mounts.py): served side by side with
``--mount PREFIX=tests.apps.mount_apps:NAME``.

- ``api``, ``site``, ``v2``: ASGI apps that answer every request with JSON naming the app and
  what its scope says (path, raw_path, root_path, query_string, the request body and the
  lifespan ``state``). Each runs its own lifespan: startup puts ``who`` = its name and a key
  only it sets into the state, and prints ``MOUNT-LIFESPAN startup|shutdown NAME`` (stdout is
  in the server's log).
- ``legacy``: a WSGI app (checked by ``wsgiref.validate``) answering with SCRIPT_NAME,
  PATH_INFO, QUERY_STRING and the request body; ``/settle?id=`` also prints
  ``RECORD <id> {}``.
- ``starlette_api``: a Starlette app with named routes, to be mounted under a prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from urllib.parse import parse_qs
from wsgiref.validate import validator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def make_asgi(name: str):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["who"] = name
                    scope["state"]["only_" + name] = f"{name}-lifespan-value"
                    print(f"MOUNT-LIFESPAN startup {name}", flush=True)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    print(f"MOUNT-LIFESPAN shutdown {name}", flush=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http", scope["type"]
        parts = []
        for _ in range(100_000):
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        state = scope.get("state")
        payload = {
            "app": name,
            "interface": "asgi",
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1")
            if isinstance(scope.get("raw_path"), bytes) else repr(scope.get("raw_path")),
            "root_path": scope.get("root_path"),
            "query_string": scope["query_string"].decode("latin-1"),
            "body": b"".join(parts).decode("latin-1"),
            "state": dict(state) if isinstance(state, dict) else None,
        }
        body = json.dumps(payload, sort_keys=True).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    app.__name__ = app.__qualname__ = name
    return app


api = make_asgi("api")
site = make_asgi("site")
v2 = make_asgi("v2")


def _legacy(environ, start_response):
    if environ["PATH_INFO"] == "/settle":  # the tests' sign that earlier requests are done
        rid = parse_qs(environ.get("QUERY_STRING", ""))["id"][0]
        sys.stdout.flush()  # one write for the line: no other thread's output inside it
        os.write(sys.stdout.fileno(), f"RECORD {rid} {{}}\n".encode())
    length = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(length)) if int(length) else b""
    payload = {
        "app": "legacy",
        "interface": "wsgi",
        "SCRIPT_NAME": environ["SCRIPT_NAME"],
        "PATH_INFO": environ["PATH_INFO"],
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "body": body.decode("latin-1"),
    }
    data = json.dumps(payload, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


_checked_legacy = validator(_legacy)


def legacy(environ, start_response):  # two named parameters: auto-detected as WSGI
    return _checked_legacy(environ, start_response)


def _make_starlette():
    @contextlib.asynccontextmanager
    async def lifespan(app):
        print("MOUNT-LIFESPAN startup starlette", flush=True)
        yield {"who": "starlette"}
        print("MOUNT-LIFESPAN shutdown starlette", flush=True)

    async def user(request: Request):
        return JSONResponse({
            "route": "user",
            "user_id": request.path_params["user_id"],
            "url_for": str(request.url_for("user", user_id=7)),
            "url_path_for": request.app.url_path_for("user", user_id=7),
            "url": str(request.url),
            "root_path": request.scope.get("root_path"),
            "who": request.state.who,
        })

    async def index(request: Request):
        return JSONResponse({"route": "index", "items": str(request.url_for("items"))})

    async def items(request: Request):
        return JSONResponse({"route": "items"})

    return Starlette(routes=[Route("/", index), Route("/users/{user_id:int}", user, name="user"),
                             Route("/items", items, name="items")], lifespan=lifespan)


starlette_api = _make_starlette()  # starlette is in the test extra
