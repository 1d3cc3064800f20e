"""Minimal WSGI (PEP 3333) app used for every WSGI server in the benchmark.

The WSGI twin of bench/app_asgi.py; routes (by environ["PATH_INFO"]):
  /      -> 200 text/plain b"Hello, world!" (13 bytes)
  /64k   -> 200 application/octet-stream, 65536-byte precomputed body
  /echo  -> 200 application/octet-stream, echoes the request body
            (wsgi.input read fully, CONTENT_LENGTH honoured when present)
/flask, /django, /stream -> bench/frameworks_wsgi.py
anything else -> 404

Every response carries content-length and is a one-item list, so the server,
not the app, dominates the numbers.  Identical for every server under test.
"""

from bench.frameworks_wsgi import ROUTES as FRAMEWORK_ROUTES

HELLO = b"Hello, world!"
BIG = b"x" * 65536
NOT_FOUND = b"Not Found"

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]
_BIG_HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", "65536")]
_NOT_FOUND_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "9")]

_HELLO_BODY = [HELLO]
_BIG_BODY = [BIG]


def _read_body(environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n >= 0:
            # Loop: PEP 3333 lets read(n) return fewer bytes.
            chunks = []
            while n > 0:
                chunk = stream.read(n)
                if not chunk:
                    break
                chunks.append(chunk)
                n -= len(chunk)
            return b"".join(chunks)
    # No (usable) Content-Length, e.g. chunked: read to the end.
    return stream.read()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/":
        start_response("200 OK", _HELLO_HEADERS)
        return _HELLO_BODY
    if path == "/64k":
        start_response("200 OK", _BIG_HEADERS)
        return _BIG_BODY
    if path == "/echo":
        body = _read_body(environ)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    routed = FRAMEWORK_ROUTES.get(path)
    if routed is not None:
        return routed(environ, start_response)
    start_response("404 Not Found", _NOT_FOUND_HEADERS)
    return [NOT_FOUND]
