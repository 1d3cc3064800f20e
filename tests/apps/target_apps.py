"""Apps that answer with how they saw the request target (for the target cache tests)."""


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = "|".join([scope["root_path"], scope["path"],
                     scope["raw_path"].decode("latin-1"),
                     scope["query_string"].decode("latin-1")]).encode("utf-8")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def wsgi(environ, start_response):
    body = "|".join([environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["QUERY_STRING"],
                     environ["RAW_URI"]]).encode("latin-1")
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi_headers(scope, receive, send):
    """The request's header list as the app got it (after reading the whole body, so a
    chunked body's trailer has been parsed); then it changes its own copy, which must not
    leak into a later request with the same headers."""
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    body = "\n".join(f"{n.decode('latin-1')}: {v.decode('latin-1')}"
                     for n, v in scope["headers"]).encode("latin-1")
    scope["headers"].append((b"x-added-by-the-app", b"1"))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def wsgi_headers(environ, start_response):
    """The environ's header entries (HTTP_*, CONTENT_*), one per line, sorted."""
    environ["wsgi.input"].read()
    body = "\n".join(f"{k}={v}" for k, v in sorted(environ.items())
                     if k.startswith(("HTTP_", "CONTENT_"))).encode("latin-1")
    environ["HTTP_X_ADDED_BY_THE_APP"] = "1"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def head_cache(scope, receive, send):
    """How many request heads this worker's server keeps analysed, and the largest one's
    field bytes (found through the garbage collector: the app runs in the server's process)."""
    import gc
    import json

    from betula.server import ServerState

    states = [o for o in gc.get_objects() if isinstance(o, ServerState)]
    cache = states[0].head_cache
    sizes = [sum(len(n) + len(v) + 4 for n, v in key) for key in cache]
    body = json.dumps({"count": len(cache), "largest": max(sizes, default=0)}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _replayed_heads() -> list[str]:
    """The request heads this worker's server keeps for replay (betula.protocols.http1),
    found through the garbage collector: the app runs in the server's process."""
    import gc

    from betula.server import ServerState

    return [key.decode("latin-1") for state in gc.get_objects()
            if isinstance(state, ServerState) for key in state.replay_cache]


def _request_json(method: str, path: str, query: str, version: str,
                  headers: list[list[str]], body: bytes) -> bytes:
    import json

    if path == "/replays":
        return json.dumps(_replayed_heads()).encode()
    return json.dumps({"method": method, "path": path, "query": query, "version": version,
                       "headers": headers, "body": body.decode("latin-1")}).encode()


async def replay_asgi(scope, receive, send):
    """The request as the app saw it, as JSON (its body included); ``/replays``: the heads
    kept for replay."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    out = _request_json(scope["method"], scope["path"], scope["query_string"].decode(),
                        scope["http_version"],
                        [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
                        b"".join(chunks))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


def replay_wsgi(environ, start_response):
    """replay_asgi's WSGI twin (the headers as the environ's HTTP_*/CONTENT_* entries)."""
    body = environ["wsgi.input"].read()
    headers = sorted([k, v] for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_")))
    out = _request_json(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                        environ["QUERY_STRING"], environ["SERVER_PROTOCOL"][5:], headers, body)
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]
