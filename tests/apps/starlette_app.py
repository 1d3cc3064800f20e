"""A real Starlette application for the framework tests (tests/test_frameworks.py).

Environment (read per request, so the module imports without it):
- ``TESTAPP_MARK_DIR``: directory where the SSE stream and the background tasks drop marker
  files, named after the ``token`` query parameter.
- ``TESTAPP_FILE``: the file served by ``/file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

# token -> asyncio.Event set by /release; the background task of /background waits on it.
RELEASES: dict[str, asyncio.Event] = {}
# token -> what the background task did.
BACKGROUND: dict[str, str] = {}


def mark(token: str, text: str) -> None:
    """Write a marker file (atomically: write then rename) for the test to poll."""
    directory = Path(os.environ["TESTAPP_MARK_DIR"])
    tmp = directory / f".{token}.tmp"
    tmp.write_text(text)
    tmp.replace(directory / token)


class TeapotError(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # A shared mutable object (the state is copied shallowly per request) and a plain value.
    yield {"greeting": "hello from lifespan", "hits": {"count": 0}}


async def user(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    return JSONResponse({"user_id": user_id, "type": type(user_id).__name__,
                         "verbose": request.query_params.get("verbose")})


async def docs(request: Request) -> Response:
    return JSONResponse({"path": request.path_params["rest"]})


async def echo_json(request: Request) -> Response:
    data = await request.json()
    return JSONResponse({"received": data, "keys": sorted(data) if isinstance(data, dict)
                         else None})


async def form(request: Request) -> Response:
    async with request.form() as data:
        fields = {key: data.getlist(key) for key in data}
    return JSONResponse({"fields": fields})


async def upload(request: Request) -> Response:
    async with request.form() as data:
        upload_file = data["file"]
        content = await upload_file.read()
        return JSONResponse({
            "filename": upload_file.filename,
            "content_type": upload_file.content_type,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "note": data.get("note"),
        })


async def stream(request: Request) -> Response:
    count = int(request.query_params.get("n", "5"))

    async def parts() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"part {i}\n".encode()
            await asyncio.sleep(0.02)  # let each part go out on its own

    return StreamingResponse(parts(), media_type="text/plain")


async def sse(request: Request) -> Response:
    token = request.query_params["token"]

    async def events() -> AsyncIterator[str]:
        sent = 0
        how = "generator closed"
        try:
            while True:
                if await request.is_disconnected():
                    how = "is_disconnected"
                    break
                yield f"id: {sent}\nevent: tick\ndata: {json.dumps({'n': sent})}\n\n"
                sent += 1
                await asyncio.sleep(0.05)
        finally:
            mark(token, f"{how} after {sent} events")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


async def sse_quiet(request: Request) -> Response:
    """SSE with no events for a long time: the app polls is_disconnected() without writing."""
    token = request.query_params["token"]

    async def events() -> AsyncIterator[str]:
        how = "generator closed"
        try:
            yield ": connected\n\n"
            for _ in range(600):  # 30 s at most
                if await request.is_disconnected():
                    how = "is_disconnected"
                    break
                await asyncio.sleep(0.05)
            else:
                how = "gave up"
        finally:
            mark(token, how)

    return StreamingResponse(events(), media_type="text/event-stream")


async def background(request: Request) -> Response:
    token = request.query_params["token"]
    release = RELEASES.setdefault(token, asyncio.Event())

    async def task() -> None:
        # Runs after the response went out; waits for /release so the test can see the
        # response arrive while the task is still pending.
        await asyncio.wait_for(release.wait(), 20)
        BACKGROUND[token] = "done"
        mark(token, "background done")

    return JSONResponse({"queued": token}, background=BackgroundTask(task))


async def release(request: Request) -> Response:
    token = request.query_params["token"]
    RELEASES.setdefault(token, asyncio.Event()).set()
    return PlainTextResponse("released")


async def background_status(request: Request) -> Response:
    return JSONResponse({"status": BACKGROUND.get(request.query_params["token"], "pending")})


async def state(request: Request) -> Response:
    hits = request.state.hits
    hits["count"] += 1
    greeting = request.state.greeting
    if "overwrite" in request.query_params:
        request.state.greeting = "overwritten"  # must not leak into later requests
    return JSONResponse({"greeting": greeting, "hits": hits["count"]})


async def teapot(request: Request) -> Response:
    raise TeapotError(request.query_params.get("what", "tea"))


async def missing(request: Request) -> Response:
    raise HTTPException(status_code=404, detail=f"no item {request.path_params['name']}")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom in a Starlette endpoint")


async def file(request: Request) -> Response:
    return FileResponse(os.environ["TESTAPP_FILE"], media_type="application/octet-stream",
                        filename="data.bin")


async def old(request: Request) -> Response:
    code = int(request.query_params.get("code", "307"))
    return RedirectResponse(url="/users/42", status_code=code)


async def cookies(request: Request) -> Response:
    response = JSONResponse({"cookies": dict(request.cookies)})
    response.set_cookie("session", "abc123", httponly=True, path="/")
    response.set_cookie("theme", "dark", max_age=3600, samesite="strict")
    return response


async def teapot_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TeapotError)
    return JSONResponse({"error": "teapot", "what": exc.what}, status_code=418)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail, "handled_by": "custom"},
                        status_code=exc.status_code)


routes = [
    Route("/users/{user_id:int}", user),
    Route("/docs/{rest:path}", docs),
    Route("/json", echo_json, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/stream", stream),
    Route("/sse", sse),
    Route("/sse-quiet", sse_quiet),
    Route("/background", background, methods=["POST"]),
    Route("/release", release),
    Route("/background-status", background_status),
    Route("/state", state),
    Route("/teapot", teapot),
    Route("/missing/{name}", missing),
    Route("/boom", boom),
    Route("/file", file, methods=["GET", "HEAD"]),
    Route("/old", old),
    Route("/cookies", cookies),
]

app = Starlette(
    routes=routes,
    lifespan=lifespan,
    exception_handlers={TeapotError: teapot_handler, HTTPException: http_exception_handler},
)
