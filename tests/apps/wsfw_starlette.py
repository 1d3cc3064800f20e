"""A real Starlette application with WebSocket endpoints (tests/test_websocket_frameworks.py).

What the app sees that the client cannot (close codes, request headers) it prints as one
``WSFW ...`` line (flushed), which the test reads from the server's output. Every test passes
a fresh ``tag`` query parameter so its lines are its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def report(*parts: object) -> None:
    print("WSFW", *parts, flush=True)


def tag_of(websocket: WebSocket) -> str:
    return websocket.query_params.get("tag", "-")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # A shared mutable object (the state is copied shallowly per connection) and a value.
    yield {"greeting": "hello from lifespan", "hits": {"count": 0}}


# -- WebSocketEndpoint echoes, one per encoding --------------------------------------------------
class _Echo(WebSocketEndpoint):
    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        report("connect", tag_of(websocket), self.encoding)

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        report("endpoint-disconnect", tag_of(websocket), close_code)


class TextEcho(_Echo):
    encoding = "text"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"text:{data}")


class BytesEcho(_Echo):
    encoding = "bytes"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_bytes(b"bytes:" + data)


class JsonEcho(_Echo):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"echo": data, "type": type(data).__name__})


class AnyEcho(_Echo):
    encoding = None  # the message's text or bytes, as they came

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        if isinstance(data, str):
            await websocket.send_text(data)
        else:
            await websocket.send_bytes(data)


# -- a receive_text loop that ends with WebSocketDisconnect -------------------------------------
async def upper_loop(websocket: WebSocket) -> None:
    await websocket.accept()
    tag = tag_of(websocket)
    count = 0
    try:
        while True:
            text = await websocket.receive_text()
            count += 1
            await websocket.send_text(text.upper())
    except WebSocketDisconnect as exc:
        report("loop-disconnect", tag, f"code={exc.code}", f"reason={exc.reason!r}",
               f"count={count}")


# -- subprotocols -------------------------------------------------------------------------------
async def subprotocols(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    chosen = next((p for p in ("chat.v2", "chat.v1") if p in offered), None)
    await websocket.accept(subprotocol=chosen)
    await websocket.send_json({"offered": offered, "chosen": chosen})
    await websocket.close()


# -- the app closes with a code and a reason ----------------------------------------------------
async def closer(websocket: WebSocket) -> None:
    await websocket.accept()
    order = await websocket.receive_json()
    await websocket.send_text("closing")
    await websocket.close(code=order["code"], reason=order["reason"])
    # After close: the next receive is the disconnect (the close handshake's answer).
    message = await websocket.receive()
    report("after-close", tag_of(websocket), message["type"])


# -- refusal before accept ----------------------------------------------------------------------
class Guarded(WebSocketEndpoint):
    encoding = "text"

    async def on_connect(self, websocket: WebSocket) -> None:
        if websocket.query_params.get("key") != "sesame":
            report("refused", tag_of(websocket))
            await websocket.close(code=1008)
            return
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"welcome:{data}")

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        report("guarded-disconnect", tag_of(websocket), close_code)


async def denied(websocket: WebSocket) -> None:
    response = PlainTextResponse("token required\n", status_code=401,
                                 headers={"www-authenticate": 'Bearer realm="ws"',
                                          "x-denied-by": "starlette"})
    await websocket.send_denial_response(response)
    report("denied", tag_of(websocket))


async def denied_streaming(websocket: WebSocket) -> None:
    """A denial response without a Content-Length, in several body parts."""
    async def parts() -> AsyncIterator[bytes]:
        for word in (b"slow ", b"down ", b"please\n"):
            yield word

    response = StreamingResponse(parts(), status_code=429, media_type="text/plain",
                                 headers={"retry-after": "7"})
    await websocket.send_denial_response(response)
    report("denied-streaming", tag_of(websocket))


async def denied_by_exception(websocket: WebSocket) -> None:
    """Starlette turns an HTTPException raised before accept into a denial response."""
    report("raising", tag_of(websocket))
    raise HTTPException(status_code=401, detail="who are you?",
                        headers={"www-authenticate": "Basic"})


# -- lifespan state -----------------------------------------------------------------------------
async def ws_state(websocket: WebSocket) -> None:
    await websocket.accept()
    hits = websocket.state.hits
    hits["count"] += 1
    body = {"greeting": websocket.state.greeting, "hits": hits["count"],
            "scope_greeting": websocket.scope["state"]["greeting"]}
    if "overwrite" in websocket.query_params:
        websocket.state.greeting = "overwritten"  # must not leak into later connections
    await websocket.send_json(body)
    await websocket.close()


async def http_state(request: Request) -> Response:
    hits = request.state.hits
    hits["count"] += 1
    return JSONResponse({"greeting": request.state.greeting, "hits": hits["count"]})


# -- what the scope looks like ------------------------------------------------------------------
async def scope_info(websocket: WebSocket) -> None:
    scope = websocket.scope
    await websocket.accept()
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    await websocket.send_text(json.dumps({
        "type": scope["type"], "scheme": scope["scheme"], "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "path_params": websocket.path_params, "url": str(websocket.url),
        "extensions": sorted(scope.get("extensions") or {}),
        "http_version": scope["http_version"], "headers": headers,
        "client_is_loopback": scope["client"][0] == "127.0.0.1",
    }))
    await websocket.close()


routes = [
    WebSocketRoute("/echo/text", TextEcho),
    WebSocketRoute("/echo/bytes", BytesEcho),
    WebSocketRoute("/echo/json", JsonEcho),
    WebSocketRoute("/echo/any", AnyEcho),
    WebSocketRoute("/upper", upper_loop),
    WebSocketRoute("/subprotocols", subprotocols),
    WebSocketRoute("/close", closer),
    WebSocketRoute("/guarded", Guarded),
    WebSocketRoute("/denied", denied),
    WebSocketRoute("/denied/streaming", denied_streaming),
    WebSocketRoute("/denied/exception", denied_by_exception),
    WebSocketRoute("/state", ws_state),
    WebSocketRoute("/scope/{name}", scope_info),
    Route("/state", http_state),
]

app = Starlette(routes=routes, lifespan=lifespan)
