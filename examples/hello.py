"""The bundled example: a tiny ASGI app with a few routes.

    betula examples.hello:app
"""

import json


def _jsonable(value):
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    # Route on the path below the mount point (scope["path"] includes root_path).
    path = scope["path"][len(scope["root_path"]):] or "/"
    if path == "/":
        body = b"Hello, world!"
        ctype = b"text/plain"
    elif path == "/echo":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        ctype = b"application/octet-stream"
    elif path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "state", "extensions")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")]
                            for n, v in scope["headers"]]
        body = json.dumps(shown, default=_jsonable).encode()
        ctype = b"application/json"
    else:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Not Found"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})
