"""Apps for --worker-mode thread and subinterpreter (tests/test_thread_mode.py,
tests/test_subinterpreter_mode.py): each answer says which process and thread served it;
/burn spends a fixed amount of pure-Python CPU and reports its window (CLOCK_MONOTONIC, the
same clock in every process) and the CPU its thread used."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from urllib.parse import parse_qs

import betula.state
from betula import pubsub
from tests.apps.lifespan_stub import serve_lifespan


def _burn(rounds: int) -> dict:
    betula.state.incr("thread-apps-burns")  # (the shared state: seen by every worker)
    start, cpu = time.monotonic(), time.thread_time()
    total = 0
    for i in range(rounds):  # pure Python: it runs in parallel only without a GIL
        total += i * i % 7
    return {"start": start, "end": time.monotonic(), "cpu": time.thread_time() - cpu,
            "thread": threading.current_thread().name,
            "total": total}


def _answer(path: str, query: str) -> tuple[int, bytes]:
    args = parse_qs(query)
    if path == "/burn":
        return 200, json.dumps(_burn(int(args.get("rounds", ["2000000"])[0]))).encode()
    if path == "/started":
        return 200, str(betula.state.get("thread-apps-burns", 0)).encode()
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/sleep":
        time.sleep(float(args.get("s", ["1"])[0]))
    if path == "/count":
        return 200, str(betula.state.incr("thread-mode-count")).encode()
    return 200, f"pid={os.getpid()} thread={threading.current_thread().name}".encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await receive()
    if scope["path"] == "/sub":  # the next message on "modes", from any worker
        async with pubsub.subscribe("modes") as messages:
            await betula.state.aset("modes-subscribed", True)
            async with asyncio.timeout(20):
                async for item in messages:
                    body = json.dumps(getattr(item, "data", None)).encode()
                    break
        status = 200
    elif scope["path"] == "/pub":
        reached = await pubsub.apublish("modes", scope["query_string"].decode())
        status, body = 200, str(reached).encode()
    else:
        status, body = _answer(scope["path"], scope["query_string"].decode())
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def wsgi(environ, start_response):
    status, body = _answer(environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
    start_response(f"{status} OK", [("Content-Type", "text/plain")])
    return [body]
