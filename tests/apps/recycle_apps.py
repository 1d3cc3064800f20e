"""Apps for recycling and stuck-worker tests: answer with the worker's pid; /block blocks
the event loop (a stuck app); /grow keeps 40 MiB per call alive (a leaking app)."""

import os
import time

_LEAK: list[bytes] = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/block":
        time.sleep(120)  # blocks the whole event loop: the master must notice
    elif path == "/grow":
        _LEAK.append(os.urandom(1024) * (40 * 1024))
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
