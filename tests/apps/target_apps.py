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
