"""Minimal ASGI 3 app used for every server in the benchmark.

Routes (by scope["path"]):
  /      -> 200 text/plain b"Hello, world!" (13 bytes)
  /64k   -> 200 application/octet-stream, 65536-byte precomputed body
  /echo  -> 200 application/octet-stream, echoes the request body
/fastapi, /starlette, /stream, /starlette-stream -> bench/frameworks_asgi.py
anything else -> 404
WebSocket /ws -> accepts, echoes every message (text as text, bytes as bytes)

Kept deliberately tiny so that the server, not the app, dominates the numbers.
Identical for every server under test.
"""

from bench.frameworks_asgi import ROUTES as FRAMEWORK_ROUTES

HELLO = b"Hello, world!"
BIG = b"x" * 65536

_HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
_BIG_HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]
_NOT_FOUND_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"9")]


async def _respond(send, status, headers, body):
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_lifespan(receive, send):
    """Answer the lifespan protocol (nothing to start or stop); also bench/state_app.py's."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path == "/":
            await _respond(send, 200, _HELLO_HEADERS, HELLO)
        elif path == "/64k":
            await _respond(send, 200, _BIG_HEADERS, BIG)
        elif path == "/echo":
            chunks = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode("ascii")),
            ]
            await _respond(send, 200, headers, body)
        else:
            routed = FRAMEWORK_ROUTES.get(path)
            if routed is not None:
                await routed(scope, receive, send)
            else:
                await _respond(send, 404, _NOT_FOUND_HEADERS, b"Not Found")
    elif kind == "websocket":
        await _ws_echo(receive, send)
    elif kind == "lifespan":
        await serve_lifespan(receive, send)


async def _ws_echo(receive, send):
    message = await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})
