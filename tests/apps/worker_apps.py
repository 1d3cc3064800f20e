"""Apps for tests/test_workers.py (``--workers N``: the master and its workers).

- ``app``: every response body is ``"<pid> <TEXT>"``: the worker's pid, and the text read
  from the file named by BETULA_TEST_TEXT_FILE *when this module is imported* (empty when the
  variable is unset). A rolling restart (HUP) re-imports the module in the new workers, so
  rewriting the file and sending HUP changes the text; without a re-import it never changes.
  The text ``raise-on-import`` makes the import fail (a broken deploy).
  Routes: ``/sse`` an event stream that writes ``"disconnect\\n"`` to the file named by
  BETULA_TEST_DISCONNECT_FILE when it receives http.disconnect; ``/hold?s=N`` a request that
  is answered only after N seconds (no receive(): a graceful stop has to wait for it; it
  prints ``HOLDING <pid>`` once it holds);
  anything else answers at once.
- ``failing_startup``: answers lifespan startup with lifespan.startup.failed and a message.
- ``crashing``: starts and serves, then its worker process dies 0.1 s later (a crash loop).
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan


def _read_text() -> str:
    path = os.environ.get("BETULA_TEST_TEXT_FILE")
    if not path:
        return ""
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


TEXT = _read_text()  # read once, at import: only a re-import sees a rewritten file
if TEXT == "raise-on-import":  # a code change that breaks the app
    raise RuntimeError("the app is broken: import-marker-9d4")


async def _answer(send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _sse(receive, send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache")]})

    async def events() -> None:
        for n in range(600):  # bounded: a leaked stream ends by itself within a minute
            await send({"type": "http.response.body",
                        "body": f"data: {os.getpid()} {n}\n\n".encode(), "more_body": True})
            await asyncio.sleep(0.1)

    streaming = asyncio.ensure_future(events())
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                path = os.environ.get("BETULA_TEST_DISCONNECT_FILE")
                if path:
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write("disconnect\n")
                return
    finally:
        streaming.cancel()
        try:
            await streaming
        except BaseException:  # noqa: BLE001 - cancelled, or send() after the disconnect
            pass


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/sse":
        await _sse(receive, send)
        return
    if path == "/hold":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        print(f"HOLDING {os.getpid()}", flush=True)  # the test waits for this line
        await asyncio.sleep(min(float(query.get("s", ["30"])[0]), 60.0))
    await _answer(send, f"{os.getpid()} {TEXT}".encode())


async def failing_startup(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed",
                    "message": "cache cluster unreachable: worker-boot-marker-5c2"})
        return
    await _answer(send, b"never")


async def crashing(scope, receive, send) -> None:
    """Starts, serves, and 0.1 s later its worker process dies (exit status 1): a crash loop."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        asyncio.get_running_loop().call_later(0.1, os._exit, 1)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _answer(send, f"{os.getpid()}".encode())
