"""Apps for tests/test_shared_state.py: shared state and pub/sub through the real CLI.

``app`` (ASGI) routes on the path:
- ``/incr?key=K&n=N``: N ``aincr`` calls, answers the last value; ``/sincr``: the sync call.
- ``/get?key=K``, ``/set?key=K&value=JSON&ttl=S``, ``/delete?key=K``, ``/keys?prefix=P``.
- ``/pid``: the worker's pid (tests find out which worker answered).
- ``/publish?topic=T&value=JSON``: publish, answer how many it reached.
- ``/bad``: store a set (not JSON): the TypeError's text.
- WebSocket ``/sub?topic=T``: subscribe, say "ready PID", then forward every message (and Gap)
  as JSON text.

``wsgi_app`` does the same ``incr`` from WSGI threads (``/incr?key=K``).
"""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import parse_qs

from betula import pubsub, state
from tests.apps.lifespan_stub import serve_lifespan


def _query(scope) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _answer(send, value, status=200) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    query = _query(scope)
    path = scope["path"]
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        async with pubsub.subscribe(query["topic"]) as messages:
            await send({"type": "websocket.send", "text": f"ready {os.getpid()}"})

            async def forward() -> None:
                async for item in messages:
                    if isinstance(item, pubsub.Gap):
                        text = {"gap": item.topic, "missed": item.missed}
                    else:
                        text = {"topic": item.topic, "data": item.data, "seq": item.seq}
                    await send({"type": "websocket.send", "text": json.dumps(text)})

            forwarding = asyncio.ensure_future(forward())
            while (await receive())["type"] != "websocket.disconnect":
                pass  # (what the client sends is not used here)
            forwarding.cancel()
        return
    await receive()
    if path == "/incr":
        value = 0
        for _ in range(int(query.get("n", "1"))):
            value = await state.aincr(query["key"])
        await _answer(send, value)
    elif path == "/sincr":
        await _answer(send, state.incr(query["key"]))
    elif path == "/get":
        await _answer(send, await state.aget(query["key"], "missing"))
    elif path == "/set":
        ttl = float(query["ttl"]) if "ttl" in query else None
        await state.aset(query["key"], json.loads(query["value"]), ttl=ttl)
        await _answer(send, "ok")
    elif path == "/delete":
        await _answer(send, await state.adelete(query["key"]))
    elif path == "/keys":
        await _answer(send, await state.akeys(query.get("prefix", "")))
    elif path == "/pid":
        await _answer(send, os.getpid())
    elif path == "/publish":
        await _answer(send, await pubsub.apublish(query["topic"], json.loads(query["value"])))
    elif path == "/bad":
        try:
            await state.aset("bad", {1, 2})
            await _answer(send, "stored?!")
        except TypeError as exc:
            await _answer(send, str(exc))
    else:
        await _answer(send, "not found", 404)


def wsgi_app(environ, start_response):  # type: ignore[no-untyped-def]
    query = {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    body = json.dumps(state.incr(query["key"])).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
