"""One Starlette app for the headless-Chromium test (tests/test_websocket_frameworks.py).

``GET /?tag=T`` serves a page whose script opens a WebSocket back to ``/ws``, sends a short
text, a large compressible text and a few bytes, waits for the three echoes, closes with 1000
and reports what it saw to ``GET /result`` (query parameters). The app prints one
``WSFW ...`` line per event (the handshake's request headers, the close, the result) for the
test to read from the server's output.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>betula websocket</title></head>
<body><p id="status">running</p>
<script>
(async () => {
  const tag = new URLSearchParams(location.search).get("tag");
  const report = (fields) =>
    fetch("/result?" + new URLSearchParams({tag, ...fields}), {cache: "no-store"});
  try {
    const ws = new WebSocket(`ws://${location.host}/ws?tag=${tag}`, ["betula.echo"]);
    ws.binaryType = "arraybuffer";
    const big = "betula serves websockets ".repeat(8000);  // 200 kB, compresses well
    const got = [];
    await new Promise((resolve, reject) => {
      ws.onopen = () => {
        ws.send("hello from chromium");
        ws.send(big);
        ws.send(new Uint8Array([0, 1, 2, 255]));
      };
      ws.onmessage = (event) => {
        got.push(event.data);
        if (got.length === 3) resolve();
      };
      ws.onerror = () => reject(new Error("websocket error event"));
      ws.onclose = (event) => reject(new Error(`closed early: ${event.code}`));
    });
    ws.onclose = null;
    ws.onerror = null;
    ws.close(1000, "done");
    await report({
      got: got[0],
      big_ok: String(got[1] === big),
      big_length: String(got[1].length),
      bin: Array.from(new Uint8Array(got[2])).join(","),
      extensions: ws.extensions,
      protocol: ws.protocol,
    });
    document.getElementById("status").textContent = "done";
  } catch (error) {
    await report({error: String(error)});
  }
})();
</script>
</body></html>
"""


def report(*parts: object) -> None:
    print("WSFW", *parts, flush=True)


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"cache-control": "no-store"})


async def result(request: Request) -> Response:
    fields = dict(request.query_params)
    report("result", fields.get("tag", "-"), json.dumps(fields, sort_keys=True))
    return Response(status_code=204)


async def echo(websocket: WebSocket) -> None:
    tag = websocket.query_params.get("tag", "-")
    headers = {"extensions": websocket.headers.get("sec-websocket-extensions", ""),
               "user_agent": websocket.headers.get("user-agent", ""),
               "origin": websocket.headers.get("origin", ""),
               "subprotocols": websocket.scope["subprotocols"]}
    report("browser-connect", tag, json.dumps(headers, sort_keys=True))
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="betula.echo" if "betula.echo" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message["code"], message.get("reason"))
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        report("browser-disconnect", tag, f"code={exc.code}", f"reason={exc.reason!r}")


app = Starlette(routes=[
    Route("/", page),
    Route("/result", result),
    WebSocketRoute("/ws", echo),
])
