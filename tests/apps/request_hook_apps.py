"""Apps and request hooks for tests/test_request_hooks.py (--on-request, --on-response,
--on-error). ``require_token`` and ``rate_limit`` are the README's examples, as written there.

The apps answer with what they saw (JSON: method, path, the headers the tests look at);
``/stream`` sends three chunks (ASGI ``more_body``, a WSGI generator), ``/boom`` raises
before the response starts (``/boom-gen``: inside a WSGI generator, before its first
chunk), ``/late`` raises after its first chunk went out.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque

from betula.request_hooks import Response
from tests.apps.lifespan_stub import serve_lifespan

SEEN = ("authorization", "x-user-id", "x-request-id", "x-client", "host")


def _seen(method: str, path: str, headers: dict[str, str]) -> bytes:
    return json.dumps({"method": method, "path": path,
                       "headers": {name: headers.get(name) for name in SEEN}}).encode()


# -- the apps ------------------------------------------------------------------------------
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "websocket":  # an echo, to show the hooks leave it alone
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + message.get("text", "")})
    await receive()
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("the app exploded")
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json")]}
    if path == "/stream":
        await send({**start, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"three"})
        return
    if path == "/late":
        await send(start)
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise RuntimeError("the app exploded after its first chunk")
    headers = {name.decode("latin-1"): value.decode("latin-1")
               for name, value in scope["headers"]}
    await send(start)
    await send({"type": "http.response.body", "body": _seen(scope["method"], path, headers)})


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("the app exploded")
    if path == "/boom-gen":
        return _boom_gen(start_response)
    if path == "/stream":
        return _stream(start_response)
    if path == "/late":
        return _late(start_response)
    headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [_seen(environ["REQUEST_METHOD"], path, headers)]


def _stream(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b"two,"
    yield b"three"


def _boom_gen(start_response):
    yield b""  # (nothing sent yet: the response has not started)
    raise RuntimeError("the generator exploded")


def _late(start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    yield b"{"
    raise RuntimeError("the app exploded after its first chunk")


# -- the README's examples -----------------------------------------------------------------
TOKENS = {"Bearer secret-token": "alice"}  # (stands for your token check)


def verify_token(token: str) -> str | None:
    return TOKENS.get(token)


def require_token(request):
    """on_request: a 401 without a valid token; the app sees who asked in X-User-Id."""
    if request.path == "/health" or request.path.startswith("/public/"):
        return None
    token = request.headers.get("authorization")
    if token is None:
        return 401, [("www-authenticate", "Bearer")], "Missing authorization header\n"
    user = verify_token(token)
    if user is None:
        return 401, [("www-authenticate", "Bearer")], "Invalid token\n"
    request.headers.set("x-user-id", user)  # (replaces any X-User-Id the client sent)
    return None


LIMIT, WINDOW = 100, 60.0  # at most 100 requests in any 60 seconds, per client
CLIENTS = 10_000  # past this many clients, the ones quiet for a whole window are forgotten
_recent: dict[str, deque[float]] = defaultdict(deque)
_lock = threading.Lock()  # (a WSGI app's hooks run in its threads)


def rate_limit(request):
    """on_request: 429 once a client has made LIMIT requests in the last WINDOW seconds."""
    client = request.client[0] if request.client else "local"
    now = time.monotonic()
    with _lock:
        if len(_recent) > CLIENTS:
            for quiet in [key for key, times in _recent.items() if now - times[-1] > WINDOW]:
                del _recent[quiet]
        times = _recent[client]
        while times and now - times[0] > WINDOW:
            times.popleft()
        if len(times) >= LIMIT:
            retry = int(WINDOW - (now - times[0])) + 1
            return 429, [("retry-after", str(retry))], "Too many requests\n"
        times.append(now)
    return None


# -- more hooks ----------------------------------------------------------------------------
def add_request_id(request):
    """on_request: a header the app sees (HTTP_X_REQUEST_ID for WSGI)."""
    request.headers.append(("x-request-id", "req-42"))
    request.headers.set("x-client", request.client[0] if request.client else "")


def tag_response(request, response):
    """on_response: a header on every response, and what the hook saw of it."""
    response.headers.append(("x-hooked", f"{response.status} {request.method} {request.path}"))


def replace_response_headers(request, response):
    """on_response: the headers replaced as a whole (a new list, with a dict too)."""
    response.headers = [("content-type", "text/plain"), ("x-replaced", "yes")]


def drop_content_type(request, response):
    response.headers.discard("content-type")


def json_error(request, exc):
    """on_error: a JSON 500 instead of the plain one."""
    return 500, {"x-error": "json"}, {"error": type(exc).__name__, "detail": str(exc),
                                      "path": request.path}


def tuple_error(request, exc):
    """on_error with Hornbeam's (status, body)."""
    return 503, b"try again later"


def no_error_response(request, exc):
    return None


async def async_require_token(request):
    await asyncio.sleep(0)
    return require_token(request)


async def async_tag_response(request, response):
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()  # (a WSGI app's: the worker's loop)
    response.headers.append(("x-async", f"{loop.is_running()} {threading.current_thread().name}"))


async def async_json_error(request, exc):
    await asyncio.sleep(0)
    return json_error(request, exc)


def start_timer(request):
    """on_request, with on_response ``timed``: the README's timing example."""
    request.state["started"] = time.perf_counter()


def timed(request, response):
    elapsed = time.perf_counter() - request.state["started"]
    response.headers.append(("server-timing", f"app;dur={elapsed * 1000:.3f}"))


def teapot(request):
    """on_request answering with a Response record (a dict of headers, a str body)."""
    if request.path == "/tea":
        return Response(418, {"x-teapot": "yes"}, "short and stout")
    return request  # (Hornbeam's way of saying "go on")


def raising(*args):
    raise RuntimeError("the hook exploded")


def answer_nonsense(request):
    return "not a response"


def bad_status(request, exc):
    return 99, [], b""


def bad_request_headers(request):
    request.headers.append(("x-bad", 42.5))


def bad_response_headers(request, response):
    response.headers.append(("x-bad", "caf\u00e9 \u2603"))


def takes_nothing():
    return None


not_callable = 42
