"""Apps for the head replay tests (tests/test_head_replay.py): each answers the request as it
saw it, as JSON (method, path, query, version, headers, body), so a replayed head that gave
a request anything but its own parts and its own body shows in the answer."""

import json


def _request_json(method: str, path: str, query: str, version: str,
                  headers: list[list[str]], body: bytes) -> bytes:
    return json.dumps({"method": method, "path": path, "query": query, "version": version,
                       "headers": headers, "body": body.decode("latin-1")}).encode()


async def replay_asgi(scope, receive, send):
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
