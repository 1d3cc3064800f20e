"""Says how many objects the garbage collector was told to leave alone (gc.freeze)."""

import gc


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = str(gc.get_freeze_count()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
