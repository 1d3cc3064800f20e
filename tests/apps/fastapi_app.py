"""A real FastAPI application for the framework tests (tests/test_frameworks.py).

It exposes the same shared endpoints as ``starlette_app`` (so the common tests run against
both) plus FastAPI's own features: typed path/query params, pydantic bodies, 422 validation
errors, ``HTTPException``, dependencies and ``BackgroundTasks``.

Environment (read per request): ``TESTAPP_MARK_DIR`` (marker files named after the ``token``
query parameter) and ``TESTAPP_FILE`` (the file served by ``/file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

# Form() and File() need python-multipart (a test extra) when the routes are declared.
from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from pydantic import BaseModel, Field

RELEASES: dict[str, asyncio.Event] = {}
BACKGROUND: dict[str, str] = {}


def mark(token: str, text: str) -> None:
    directory = Path(os.environ["TESTAPP_MARK_DIR"])
    tmp = directory / f".{token}.tmp"
    tmp.write_text(text)
    tmp.replace(directory / token)


class TeapotError(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan", "hits": {"count": 0}}


app = FastAPI(lifespan=lifespan)


@app.exception_handler(TeapotError)
async def teapot_handler(request: Request, exc: TeapotError) -> JSONResponse:
    return JSONResponse({"error": "teapot", "what": exc.what}, status_code=418)


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


ITEMS = {1: {"name": "hammer", "price": 9.5}}


def greeting(request: Request) -> str:
    return request.state.greeting


# -- shared endpoints (same shapes as starlette_app) ------------------------------------------
@app.get("/users/{user_id}")
async def user(user_id: int, verbose: str | None = None) -> dict[str, Any]:
    return {"user_id": user_id, "type": type(user_id).__name__, "verbose": verbose}


@app.get("/docs/{rest:path}")
async def docs(rest: str) -> dict[str, Any]:
    return {"path": rest}


@app.post("/json")
async def echo_json(request: Request) -> dict[str, Any]:
    data = await request.json()
    return {"received": data, "keys": sorted(data) if isinstance(data, dict) else None}


@app.post("/form")
async def form(request: Request) -> dict[str, Any]:
    async with request.form() as data:
        return {"fields": {key: data.getlist(key) for key in data}}


@app.post("/login")
async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]
                ) -> dict[str, Any]:
    return {"username": username, "password_length": len(password)}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()],
                 note: Annotated[str | None, Form()] = None) -> dict[str, Any]:
    content = await file.read()
    return {"filename": file.filename, "content_type": file.content_type,
            "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
            "note": note}


@app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"part {i}\n".encode()
            await asyncio.sleep(0.02)

    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/sse")
async def sse(request: Request, token: str) -> StreamingResponse:
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


@app.get("/sse-quiet")
async def sse_quiet(request: Request, token: str) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        how = "generator closed"
        try:
            yield ": connected\n\n"
            for _ in range(600):
                if await request.is_disconnected():
                    how = "is_disconnected"
                    break
                await asyncio.sleep(0.05)
            else:
                how = "gave up"
        finally:
            mark(token, how)

    return StreamingResponse(events(), media_type="text/event-stream")


@app.post("/background")
async def background(token: str, tasks: BackgroundTasks) -> dict[str, Any]:
    release = RELEASES.setdefault(token, asyncio.Event())

    async def task() -> None:
        await asyncio.wait_for(release.wait(), 20)
        BACKGROUND[token] = "done"
        mark(token, "background done")

    tasks.add_task(task)
    return {"queued": token}


@app.get("/release")
async def release(token: str) -> PlainTextResponse:
    RELEASES.setdefault(token, asyncio.Event()).set()
    return PlainTextResponse("released")


@app.get("/background-status")
async def background_status(token: str) -> dict[str, Any]:
    return {"status": BACKGROUND.get(token, "pending")}


@app.get("/state")
async def state(request: Request, overwrite: str | None = None,
                hello: str = Depends(greeting)) -> dict[str, Any]:
    hits = request.state.hits
    hits["count"] += 1
    if overwrite is not None:
        request.state.greeting = "overwritten"
    return {"greeting": hello, "hits": hits["count"]}


@app.get("/teapot")
async def teapot(what: str = "tea") -> None:
    raise TeapotError(what)


@app.get("/missing/{name}")
async def missing(name: str) -> None:
    raise HTTPException(status_code=404, detail=f"no item {name}")


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom in a FastAPI endpoint")


@app.api_route("/file", methods=["GET", "HEAD"])
async def file() -> FileResponse:
    return FileResponse(os.environ["TESTAPP_FILE"], media_type="application/octet-stream",
                        filename="data.bin")


@app.get("/old")
async def old(code: int = 307) -> RedirectResponse:
    return RedirectResponse(url="/users/42", status_code=code)


@app.get("/cookies")
async def cookies(request: Request, response: Response) -> dict[str, Any]:
    response.set_cookie("session", "abc123", httponly=True, path="/")
    response.set_cookie("theme", "dark", max_age=3600, samesite="strict")
    return {"cookies": dict(request.cookies)}


# -- FastAPI only ----------------------------------------------------------------------------
@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="Item not found",
                            headers={"x-error": "missing-item"})
    return {"item_id": item_id, "q": q, **ITEMS[item_id]}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, Any]:
    return {"created": item.model_dump(), "total": item.price * max(len(item.tags), 1)}
