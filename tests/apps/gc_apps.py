"""Apps that watch how the objects a server hands them are freed: by reference counting (the
request is done and nothing holds it) or only by the garbage collector (a reference cycle
held them). Nothing here knows the server's classes.

Each request the app takes weak references, with a callback, to: a fresh object it puts into
the scope / environ (it dies with that dict), the objects behind ``receive`` / ``send`` /
``start_response`` (a bound method's ``__self__``, else the callable), and ``wsgi.input``
when the request has a body. The callback learns how its object went: during a collection
in the callback's own thread (``gc.callbacks``), so only a cycle kept it; otherwise by
reference counting. ``GET /check`` collects, so cycles not collected yet are found now, until
no watched object is alive (a hang guard ends the wait), and answers JSON
``{"made": {kind: n}, "collected": n, "alive": n}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref

_local = threading.local()
MADE: dict[str, list[int]] = {"scope": [], "callables": [], "input": []}
COLLECTED: list[int] = []  # list.append is atomic: callbacks run in any thread
LIVE: set[weakref.ref] = set()
GUARD = 10.0  # seconds /check waits for watched objects still alive


def _phase(phase: str, info: dict) -> None:
    _local.collecting = phase == "start"


gc.callbacks.append(_phase)


class Marker:
    """What the app puts into a request's scope or environ: freed with it."""


def _freed(ref: weakref.ref) -> None:
    LIVE.discard(ref)
    if getattr(_local, "collecting", False):
        COLLECTED.append(1)


def _watch(kind: str, obj: object) -> None:
    try:
        ref = weakref.ref(getattr(obj, "__self__", obj), _freed)
    except TypeError:  # not weakly referenceable: nothing to watch
        return
    LIVE.add(ref)
    MADE[kind].append(1)


def _settled() -> bool:
    """Collect (a cycle is found and counted now); True once every watched object is gone
    or the hang guard ran out (a request's thread may still be finishing meanwhile)."""
    gc.collect()
    return not LIVE or time.monotonic() > _local.deadline


def _report() -> bytes:
    return json.dumps({"made": {kind: len(n) for kind, n in MADE.items()},
                       "collected": len(COLLECTED), "alive": len(LIVE)}).encode()


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/check":
        _local.deadline = time.monotonic() + GUARD
        while not _settled():
            time.sleep(0.01)
        body = _report()
    else:
        environ["test.marker"] = Marker()
        _watch("scope", environ["test.marker"])
        _watch("callables", start_response)
        stream = environ["wsgi.input"]
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
            _watch("input", stream)  # (a body-less request's may be one shared object)
        body = stream.read() or b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/check":
        _local.deadline = time.monotonic() + GUARD
        while not _settled():
            await asyncio.sleep(0.01)
        body = _report()
    else:
        scope["test.marker"] = Marker()
        _watch("scope", scope["test.marker"])
        _watch("callables", receive)
        _watch("callables", send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks) or b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
