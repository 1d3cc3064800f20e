"""One request, given as a raw head, through the real adapter over the in-memory stream:
the adapter tests' way in (``tests/test_adapter_cases.py``), without a socket.

``run_exchange`` builds the exchange (``HTTPCycle`` or ``WSGICycle``) from a request head as
the HTTP/1 protocol builds it, and collects the response in a ``MemoryResponse``
(``protocols/memory.py``). It wires a protocol-side stream to the adapters, as the worker
does, so it lives above both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from .asgi.http import HTTPCycle
from .endpoint import Endpoint
from .headers import as_bytes
from .protocols.memory import MemoryResponse, MemoryStream
from .worker_state import WorkerState
from .wsgi.http import WSGICycle
from .wsgi.pool import ThreadPool

__all__ = ["run_exchange"]


# The adapters by interface ("asgi", "wsgi"): (the exchange factory, taking the request
# head as the HTTP/1 protocol hands it; the thread pool class its apps run in, or None).
ADAPTERS: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {
    "asgi": (HTTPCycle, None),
    "wsgi": (WSGICycle, ThreadPool),
}
_POOLS: dict[tuple[Any, int], Any] = {}


def _pool(pool_class: Callable[..., Any], size: int) -> Any:
    pool = _POOLS.get((pool_class, size))
    if pool is None:  # threads start as work arrives and live on, shared by every call
        pool = _POOLS[pool_class, size] = pool_class(size, name="betula-memory", batch=False)
    return pool


def _request_fields(headers: Iterable[Any], body: bytes, chunks: list[bytes] | None
                    ) -> tuple[tuple[bytes, bytes], ...]:
    fields = [(as_bytes(name).lower(), as_bytes(value)) for name, value in headers]
    names = {name for name, _ in fields}
    if b"content-length" not in names and b"transfer-encoding" not in names:
        if chunks is not None:
            fields.append((b"transfer-encoding", b"chunked"))
        elif body:
            fields.append((b"content-length", b"%d" % len(body)))
    return tuple(fields)


async def run_exchange(app: Any, *, interface: str = "asgi", method: str = "GET",
                       target: str | bytes = "/", headers: Iterable[Any] = (),
                       body: bytes = b"", http_version: str = "1.1",
                       chunks: list[bytes] | None = None, scheme: str = "http",
                       client: tuple[str, int] | None = ("127.0.0.1", 50000),
                       server: tuple[str, int] | None = ("127.0.0.1", 8000),
                       root_path: str = "", threads: int = 4,
                       timeout: float = 10.0) -> MemoryResponse:
    """One request through the real adapter (``HTTPCycle`` or ``WSGICycle``, built from the
    request head as the HTTP/1 protocol builds it) on the running loop, over a
    ``MemoryStream``; for WSGI in a real ``ThreadPool`` with the real hand-off to the loop.

    ``headers``: the request's fields ((name, value), str or bytes; Content-Length or
    ``Transfer-Encoding: chunked`` is added when a body needs it). ``chunks``: the body
    arrives in these pieces, one per loop turn, after the app started (held back while the
    adapter pauses reading); else ``body`` arrives whole, before. Returns once the
    exchange is over and the app has returned (TimeoutError after ``timeout`` seconds).
    App errors are the adapter's to handle: logged, and a 500 or a cut-short response.
    """
    factory, pool_class = ADAPTERS[interface]
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def on_end() -> None:
        if not ended.done():
            ended.set_result(None)

    stream = MemoryStream(scheme, client, server, on_end)
    endpoint = Endpoint(app, interface, "memory", root_path=root_path)
    state = WorkerState(None, loop,
                        pool=_pool(pool_class, threads) if pool_class is not None else None)
    fields = _request_fields(headers, body, chunks)
    expect_continue = http_version == "1.1" and \
        (b"expect", b"100-continue") in ((n, v.lower()) for n, v in fields)
    te_trailers = any(n == b"te" and b"trailers" in v.lower() for n, v in fields)
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    cycle = factory(
        state, endpoint, stream, method.encode("ascii"), raw_target, fields, http_version,
        http_version == "1.1", bool(body) or chunks is not None, expect_continue,
        te_trailers)
    stream.handler = cycle
    async with asyncio.timeout(timeout):
        if chunks is None:
            if body:
                cycle.feed_body(body)
                cycle.end_body()
            cycle.start()
        else:
            cycle.start()
            discarding = False
            for chunk in chunks:
                await asyncio.sleep(0)
                while stream.reading_paused and not stream.ended:
                    await asyncio.sleep(0.001)
                if stream.ended and not discarding:
                    discarding = True  # as HTTP/1 does once the response is done
                    cycle.discard_body()
                if chunk:
                    cycle.feed_body(chunk)
            cycle.end_body()
        await ended
        if cycle.task is not None:
            await asyncio.shield(cycle.task)
        while cycle in state.active:  # an app thread is finishing (close())
            await asyncio.sleep(0.001)
    return stream.response
