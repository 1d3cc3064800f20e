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
