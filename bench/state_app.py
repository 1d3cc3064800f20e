"""The app bench/state_ops.py measures: shared-state and pub/sub calls timed inside a
request handler, and a hello endpoint with and without one ``incr`` per request."""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qs

from bench.app_asgi import serve_lifespan
from betula import pubsub, state

HELLO = b"Hello, world!"
_bare = None


async def _bare_redis():  # type: ignore[no-untyped-def]
    global _bare
    if _bare is None:
        import redis.asyncio as aredis
        _bare = aredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _bare


async def _timed(op: str, n: int) -> list[float]:
    await state.aset("bench:key", {"a": 1, "b": [1, 2, 3], "c": "text"})
    times = []
    if op.startswith("bare-"):
        r = await _bare_redis()
        await r.set("bench:bare", b'{"a":1,"b":[1,2,3],"c":"text"}')
    for i in range(n):
        start = time.perf_counter()
        if op == "get":
            await state.aget("bench:key")
        elif op == "set":
            await state.aset("bench:set", {"i": i, "b": [1, 2, 3], "c": "text"})
        elif op == "incr":
            await state.aincr("bench:counter")
        elif op == "publish":
            await pubsub.apublish("bench.topic", {"i": i})
        elif op == "sync-get":
            state.get("bench:key")
        elif op == "bare-get":
            await r.get("bench:bare")
        elif op == "bare-incr":
            await r.incr("bench:bare-counter")
        times.append(time.perf_counter() - start)
    return times


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await receive()
    path = scope["path"]
    if path == "/hello":
        body = HELLO
    elif path == "/hello-incr":
        await state.aincr("bench:hits")
        body = HELLO
    elif path == "/ops":
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        times = sorted(await _timed(query["op"], int(query.get("n", "2000"))))
        body = json.dumps({"ops_per_s": len(times) / sum(times),
                           "p50_us": times[len(times) // 2] * 1e6,
                           "p99_us": times[int(len(times) * 0.99)] * 1e6}).encode()
    else:
        body = b"?"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
