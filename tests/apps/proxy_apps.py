"""What the app sees of its client behind a proxy (tests/test_proxy_headers.py)."""

from __future__ import annotations

import json

from tests.apps.lifespan_stub import serve_lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    host = dict(scope["headers"]).get(b"host", b"").decode()
    seen = {"client": list(scope["client"]) if scope["client"] else None,
            "scheme": scope["scheme"], "host": host}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(seen)})
        await send({"type": "websocket.close"})
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


def wsgi(environ, start_response):
    seen = {"client": [environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0)],
            "scheme": environ["wsgi.url_scheme"], "host": environ.get("HTTP_HOST", ""),
            "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
