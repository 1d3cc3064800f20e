"""Apps for tests/test_slow_bodies.py: what a request body that arrives slowly, or stops,
does to a worker."""

from __future__ import annotations

import hashlib

from tests.apps.lifespan_stub import serve_lifespan


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        out = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    elif path == "/announce":
        # Says on stdout that the app runs, before it reads the body.
        print(f"app started for {environ.get('QUERY_STRING')}", flush=True)
        body = environ["wsgi.input"].read()
        out = b"%d" % len(body)
    else:
        out = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(out)))])
    return [out]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            print(f"disconnect seen for {scope['path']}", flush=True)
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = b"%d" % len(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": out})
