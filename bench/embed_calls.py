"""Cost of one embedded call (``run_asgi``, ``arun_asgi``, ``run_wsgi``) against calling the
bare app, on a hello app with a ``build_scope`` / ``build_environ`` template (and WSGI
from the raw fields too, validated each call): what the embedding API adds.

    python bench/embed_calls.py [--calls 50000]

Prints microseconds per call (the best of 5 rounds, taken in turns) and each call's
overhead over the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from betula.embed import arun_asgi, build_environ, build_scope, run_asgi, run_wsgi  # noqa: E402

HELLO_START = {"type": "http.response.start", "status": 200,
               "headers": [(b"content-type", b"text/plain")]}
HELLO_BODY = {"type": "http.response.body", "body": b"Hello, world!"}


async def asgi_app(scope, receive, send) -> None:
    await receive()
    await send(HELLO_START)
    await send(HELLO_BODY)


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


async def _bare_receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _bare_send(message: dict) -> None:
    pass


def best_of(rounds: int, calls: int, kinds: dict[str, Callable[[int], float]]
            ) -> dict[str, float]:
    """Microseconds a call, the best round of each kind. The rounds take turns (each kind
    once a round), so a drift in the machine's speed reaches every kind alike and the
    ratios between them stay fair."""
    best = dict.fromkeys(kinds, float("inf"))
    for _ in range(rounds):
        for name, one_round in kinds.items():
            best[name] = min(best[name], one_round(calls))
    return {name: seconds / calls * 1e6 for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    template = build_scope({"type": "http", "path": "/", "method": "GET",
                            "headers": [(b"host", b"example.com")]})
    environ_fields = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/",
                      "SERVER_NAME": "example.com", "SERVER_PORT": "80",
                      "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                      "wsgi.input": b""}
    loop = asyncio.new_event_loop()

    def bare_asgi(n: int) -> float:
        async def many() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await asgi_app(template, _bare_receive, _bare_send)
            return time.perf_counter() - start
        return loop.run_until_complete(many())

    def embedded_async(n: int) -> float:
        async def many() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await arun_asgi(asgi_app, template)
            return time.perf_counter() - start
        return loop.run_until_complete(many())

    def embedded_sync(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            run_asgi(asgi_app, template)
        return time.perf_counter() - start

    def noop_start(status, headers, exc_info=None):
        return None

    def bare_wsgi(n: int) -> float:
        environ = build_environ(environ_fields)
        start = time.perf_counter()
        for _ in range(n):
            for _chunk in wsgi_app(environ, noop_start):
                pass
        return time.perf_counter() - start

    def embedded_wsgi(n: int) -> float:  # a build_environ template, as the ASGI calls have
        environ = build_environ(environ_fields)
        start = time.perf_counter()
        for _ in range(n):
            run_wsgi(wsgi_app, environ)
        return time.perf_counter() - start

    def embedded_wsgi_fields(n: int) -> float:  # the raw fields, validated each call
        start = time.perf_counter()
        for _ in range(n):
            run_wsgi(wsgi_app, environ_fields)
        return time.perf_counter() - start

    results = best_of(args.rounds, args.calls, {
        "bare ASGI app": bare_asgi, "arun_asgi": embedded_async,
        "run_asgi": embedded_sync, "bare WSGI app": bare_wsgi,
        "run_wsgi": embedded_wsgi, "run_wsgi fields": embedded_wsgi_fields})
    loop.close()
    print(f"{'call':<16}{'us/call':>10}{'overhead':>12}")
    for name, micros in results.items():
        bare = results["bare WSGI app" if "wsgi" in name.lower() else "bare ASGI app"]
        extra = "" if name.startswith("bare") else f"+{micros - bare:.2f}"
        print(f"{name:<16}{micros:>10.2f}{extra:>12}")
    print(f"run_asgi / arun_asgi: {results['run_asgi'] / results['arun_asgi']:.2f}x")


if __name__ == "__main__":
    main()
