"""Apps for the CLI, settings, listener, TLS and logging tests (tests/test_cli.py & co).

``app`` answers every path with a JSON view of the scope, except:

* ``/boom``  raises ``RuntimeError("boom-marker")`` before starting a response (→ 500 + log);
* ``/bytes/N`` answers N bytes of ``x`` (for the access log's byte count).
"""

import json

from tests.apps.lifespan_stub import serve_lifespan


def _scope_view(scope):
    def plain(value):
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {
        "type": scope["type"],
        "scheme": scope["scheme"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": plain(scope["raw_path"]),
        "query_string": plain(scope["query_string"]),
        "root_path": scope.get("root_path", ""),
        "client": plain(scope.get("client")),
        "server": plain(scope.get("server")),
    }


async def _send(send, status, body, ctype=b"text/plain"):
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive):
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        more = message.get("more_body", False)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await _drain(receive)
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("boom-marker")
    if path.startswith("/bytes/"):
        await _send(send, 200, b"x" * int(path.rsplit("/", 1)[1]))
        return
    await _send(send, 200, json.dumps(_scope_view(scope)).encode(), b"application/json")


def create_app():
    """An app factory (for ``--factory``)."""

    async def made(scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await _drain(receive)
        await _send(send, 200, b"made by factory")

    return made


def factory_raises():
    raise RuntimeError("factory-failure-marker")


def factory_returns_junk():
    return 12345


not_callable = {"this": "is a dict, not an app"}
