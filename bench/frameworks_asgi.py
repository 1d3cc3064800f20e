"""The benchmark's framework routes for ASGI servers (bench/app_asgi.py dispatches to them):

  /fastapi?page=N&q=S    -> FastAPI JSON endpoint: {"page": N, "q": S, "items": [...]}
  /starlette?page=N&q=S  -> Starlette route, JSONResponse of the same
  /stream                -> plain ASGI: 200 ``data:`` events, one more_body message each
  /starlette-stream      -> Starlette StreamingResponse of the same 200 events (it listens
                            for http.disconnect while it streams)

What real apps do on every request: parse the query, validate it (FastAPI), serialise
JSON, stream server-sent events; identical for every server under test.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

EVENTS = 200
EVENT = b"data: {\"token\": \"lorem\"}\n\n"
ITEMS = [{"id": i, "name": f"item {i}", "price": 9.5 + i} for i in range(5)]

fastapi_app = FastAPI()


@fastapi_app.get("/fastapi")
async def items(page: int = 0, q: str = "") -> dict:
    return {"page": page, "q": q, "items": ITEMS}


async def starlette_items(request: Request) -> JSONResponse:
    params = request.query_params
    return JSONResponse({"page": int(params.get("page", 0)), "q": params.get("q", ""),
                         "items": ITEMS})


async def _events():
    for _ in range(EVENTS):
        yield EVENT


async def starlette_stream(request: Request) -> StreamingResponse:
    return StreamingResponse(_events(), media_type="text/event-stream")


starlette_app = Starlette(routes=[Route("/starlette", starlette_items),
                                  Route("/starlette-stream", starlette_stream)])

_STREAM_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def stream(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
    for _ in range(EVENTS):
        await send({"type": "http.response.body", "body": EVENT, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


ROUTES = {
    "/fastapi": fastapi_app,
    "/starlette": starlette_app,
    "/starlette-stream": starlette_app,
    "/stream": stream,
}
