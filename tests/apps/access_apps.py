"""Apps for the access-log formats (tests/test_access_log.py): the same answers in ASGI and
WSGI. ``/hello``: 5 bytes with an ``X-Answer`` header; ``/stream``: three chunks, 9 bytes;
``/ws`` (ASGI): a WebSocket that is accepted and closed."""

from __future__ import annotations

from tests.apps.lifespan_stub import serve_lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return
    await receive()
    headers = [(b"content-type", b"text/plain"), (b"x-answer", b"forty-two")]
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in (b"one", b"two", b"six"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def wsgi(environ, start_response):
    headers = [("Content-Type", "text/plain"), ("X-Answer", "forty-two")]
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", headers)
        return (chunk for chunk in (b"one", b"two", b"six"))
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(status, headers)
    return [b"hello"]
