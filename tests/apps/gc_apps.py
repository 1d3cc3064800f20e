"""Apps that report request objects left to the garbage collector (reference cycles).

Importing this module turns on gc.DEBUG_SAVEALL: whatever the collector finds unreachable
is kept in gc.garbage instead of freed, so /count can tell which kinds of objects were
left in cycles. Objects freed by reference counting never get there.
"""

import gc

gc.set_debug(gc.DEBUG_SAVEALL)
KINDS = ("WSGICycle", "HTTPCycle", "BodyBuffer", "InputStream")


def _count() -> bytes:
    gc.collect()
    found = {kind: 0 for kind in KINDS}
    for obj in gc.garbage:
        name = type(obj).__name__
        if name in found:
            found[name] += 1
    del gc.garbage[:]
    return ",".join(f"{kind}={n}" for kind, n in found.items()).encode()


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/count":
        body = _count()
    else:
        body = environ["wsgi.input"].read() or b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/count":
        body = _count()
    else:
        message = await receive()
        body = message.get("body", b"") or b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
