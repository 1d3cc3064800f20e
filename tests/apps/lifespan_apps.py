"""Apps for tests/test_lifespan.py: one per lifespan behaviour.

Each prints ``LIFESPAN ...`` lines to stdout (captured in the server log) for what the test
cannot see otherwise; ``stateful`` also writes the file named by BETULA_TEST_MARKER on
shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os


def say(text: str) -> None:
    print(f"LIFESPAN {text}", flush=True)


async def _hello(send, body: bytes = b"hello", ctype: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def raising(scope, receive, send) -> None:
    """A plain HTTP app that does not know lifespan: it raises on any other scope type."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type lifespan-marker-7d1 {scope['type']!r}")
    await _hello(send)


async def failing(scope, receive, send) -> None:
    """Answers startup with lifespan.startup.failed and a message."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed",
                    "message": "database unreachable: failed-marker-3e9"})
        return
    await _hello(send)


async def hanging(scope, receive, send) -> None:
    """Receives startup and never answers (bounded so a leaked process ends by itself)."""
    if scope["type"] == "lifespan":
        await receive()
        say("startup received, not answering")
        await asyncio.sleep(60)
        return
    await _hello(send)


async def slow_shutdown(scope, receive, send) -> None:
    """Completes startup; never answers shutdown (bounded)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        say("shutdown received, not answering")
        await asyncio.sleep(60)
        return
    await _hello(send)


async def stateful(scope, receive, send) -> None:
    """Full lifespan: state at startup, a marker on shutdown; requests return their state."""
    if scope["type"] == "lifespan":
        say("scope " + json.dumps({
            "type": scope["type"], "asgi_version": scope.get("asgi", {}).get("version"),
            "state_type": type(scope.get("state")).__name__}))
        for _ in range(10):
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                scope["state"]["pool_size"] = 5
                say("startup complete")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                marker = os.environ.get("BETULA_TEST_MARKER")
                if marker:
                    with open(marker, "w") as fh:  # noqa: ASYNC230
                        fh.write("shutdown ran\n")
                say("shutdown complete")
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    state = scope.get("state")
    body = json.dumps({"state": dict(state) if isinstance(state, dict) else None,
                       "has_state": "state" in scope}).encode()
    await _hello(send, body, b"application/json")


async def recording(scope, receive, send) -> None:
    """Says whenever it is called with a lifespan scope; supports lifespan."""
    if scope["type"] == "lifespan":
        say("called with lifespan scope")
        for _ in range(10):
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    await _hello(send)
