"""What the request hooks (``request_hooks.py``) see and return: the ``Request`` record,
``Headers`` (a list of str pairs with a mapping's lookups), ``ResponseHead`` (what
``on_response`` may change), ``Response`` and the forms a hook may answer with, checked
(``to_response``); and the request as a record of an ASGI scope or a WSGI environ, with
the changes ``on_request`` made to its headers put back into the environ."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .http_common import phrase

__all__ = ["Headers", "Malformed", "Request", "Response", "ResponseHead", "asgi_fields",
           "request_from_environ", "request_from_scope", "status_line", "text_fields",
           "to_response", "update_environ"]


class Malformed(Exception):
    """What a hook returned (or left in headers) is not what it may; ``str()`` says why."""


class Headers(list):
    """A list of ``(name, value)`` str pairs, with the lookups of a mapping (names
    compared without case): ``get``, ``getall``, ``set``, ``add``, ``discard`` and
    ``name in headers``. Request headers have lowercase names; response headers are as
    the app gave them."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The first value of ``name``, or ``default``."""
        name = name.lower()
        for key, value in self:
            if key.lower() == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self if key.lower() == name]

    def set(self, name: str, value: str) -> None:
        """``name`` with this one value (every earlier field of that name removed)."""
        self.discard(name)
        self.append((name, value))

    def add(self, name: str, value: str) -> None:
        self.append((name, value))

    def discard(self, name: str) -> None:
        """Remove every field named ``name`` (none: nothing happens)."""
        name = name.lower()
        self[:] = [pair for pair in self if pair[0].lower() != name]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            item = item.lower()
            return any(key.lower() == item for key, _ in self)
        return list.__contains__(self, item)


class Request:
    """What the hooks see of a request (read-only, but for ``headers``, which
    ``on_request`` may change, and ``state``, a dict for the hooks' own use: what
    on_request puts there, on_response and on_error find)."""

    __slots__ = ("_method", "_path", "_query", "_headers", "_client", "_scheme",
                 "_http_version", "_state")

    def __init__(self, method: str, path: str, query: str, headers: Headers,
                 client: tuple[str, int] | None, scheme: str, http_version: str) -> None:
        self._method = method
        self._path = path
        self._query = query
        self._headers = headers
        self._client = client
        self._scheme = scheme
        self._http_version = http_version
        self._state: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        return self._method

    @property
    def path(self) -> str:
        """The decoded path, the mount prefix and --root-path included."""
        return self._path

    @property
    def query(self) -> str:
        """The query string as sent (still percent-encoded), without the "?"."""
        return self._query

    @property
    def headers(self) -> Headers:
        return self._headers

    @property
    def client(self) -> tuple[str, int] | None:
        """(host, port) of the client (a trusted proxy's client), None on a Unix socket."""
        return self._client

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def http_version(self) -> str:
        """"1.0", "1.1" or "2"."""
        return self._http_version

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            self._state = {}
        return self._state

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._path!r}>"


class ResponseHead:
    """What ``on_response`` sees of a response: ``status`` (read-only) and ``headers``
    (``Headers``; change it in place or assign a new list of pairs)."""

    __slots__ = ("_status", "headers")

    def __init__(self, status: int, headers: Headers) -> None:
        self._status = status
        self.headers: Any = headers

    @property
    def status(self) -> int:
        return self._status

    def __repr__(self) -> str:
        return f"<ResponseHead {self._status}>"


class Response:
    """A response a hook answers with: ``status`` (an int, 200-999), ``headers`` (a list
    of (name, value) pairs or a dict; str or bytes) and ``body`` (bytes; a str is sent as
    UTF-8 text/plain, a dict or list as JSON, unless the headers give a content-type)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Any = (), body: Any = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


# -- what the hooks return ------------------------------------------------------------------
def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise Malformed(f"a header {what} is not latin-1 text: {value!r}") from None
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, int) and not isinstance(value, bool) and what == "value":
        return str(value)
    raise Malformed(f"a header {what} is a {type(value).__name__}, not a str")


def text_fields(headers: Any) -> Headers:
    """Header pairs (a list or tuple of pairs, or a mapping) as a ``Headers`` of str."""
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, (list, tuple)):
        items = headers
    else:
        raise Malformed(f"headers are a {type(headers).__name__}, not a list of "
                         "(name, value) pairs or a dict")
    fields = Headers()
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Malformed(f"a header is not a (name, value) pair: {item!r}")
        name = _text(item[0], "name")
        if not name:
            raise Malformed("a header has an empty name")
        fields.append((name, _text(item[1], "value")))
    return fields


def asgi_fields(fields: Headers) -> list[tuple[bytes, bytes]]:
    """Checked fields (``text_fields``) as an ASGI header list."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in fields]


def to_response(result: Any) -> Response:
    """What on_request or on_error returned, as a checked ``Response`` (``Malformed``
    when it is not one of the accepted forms)."""
    if isinstance(result, Response):
        status, headers, body = result.status, result.headers, result.body
    elif isinstance(result, tuple) and len(result) == 3:
        status, headers, body = result
    elif isinstance(result, tuple) and len(result) == 2:
        (status, body), headers = result, ()
    else:
        raise Malformed(f"{_kind(result)}, not None, a Response, (status, headers, body) "
                         "or (status, body)")
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 999:
        raise Malformed(f"status {status!r}, not an int from 200 to 999")
    fields = text_fields(headers if headers is not None else ())
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")
        if "content-type" not in fields:
            fields.append(("content-type", "text/plain; charset=utf-8"))
    elif isinstance(body, (dict, list)):
        try:
            data = json.dumps(body).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise Malformed(f"a body that is not JSON: {exc}") from None
        if "content-type" not in fields:
            fields.append(("content-type", "application/json"))
    elif body is None:
        data = b""
    else:
        raise Malformed(f"a body of type {type(body).__name__}, not bytes, str, dict or list")
    return Response(status, fields, data)


def _kind(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    return f"a {type(value).__name__}"


def status_line(status: int) -> str:
    return f"{status} {phrase(status) or 'Unknown'}"


# -- the request, and the headers the app sees --------------------------------------------
def _env_entries(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The environ entries of header fields, as the WSGI adapter makes them (a name with
    "_" dropped, repeated fields joined)."""
    entries: dict[str, str] = {}
    for name, value in fields:
        name = name.lower()
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        elif "_" in name:
            continue
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in entries and key[0] == "H":
            entries[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            entries[key] = value
    return entries


def update_environ(environ: dict[str, Any], before: list[tuple[str, str]],
                    after: Any) -> None:
    """The environ's header entries changed as on_request changed ``request.headers``
    (only the changed ones: what a trusted proxy's headers set stays)."""
    old = _env_entries(before)
    new = _env_entries(text_fields(after))
    for key in old.keys() - new.keys():
        if key.startswith("HTTP_"):
            del environ[key]
        else:
            environ[key] = ""  # (CONTENT_TYPE, CONTENT_LENGTH: always there, "" when absent)
    for key, value in new.items():
        if old.get(key) != value:
            environ[key] = value


def request_from_scope(scope: dict[str, Any]) -> Request:
    headers = Headers((bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                      for name, value in scope["headers"])
    client = scope.get("client")
    return Request(scope["method"], scope["path"],
                   scope.get("query_string", b"").decode("latin-1"), headers,
                   (client[0], client[1]) if client else None, scope.get("scheme", "http"),
                   scope.get("http_version", "1.1"))


def request_from_environ(environ: dict[str, Any]) -> Request:
    headers = Headers()
    for key, value in environ.items():
        if key[:5] == "HTTP_":
            headers.append((key[5:].lower().replace("_", "-"), value))
        elif (key == "CONTENT_TYPE" or key == "CONTENT_LENGTH") and value:
            headers.append((key.lower().replace("_", "-"), value))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:  # (PEP 3333: the decoded path's bytes, carried as latin-1)
        path = path.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        pass
    addr = environ.get("REMOTE_ADDR")
    port = environ.get("REMOTE_PORT", "0")
    client = (addr, int(port) if str(port).isdigit() else 0) if addr else None
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return Request(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), headers,
                   client, environ.get("wsgi.url_scheme", "http"),
                   protocol[5:] if protocol[:5] == "HTTP/" else protocol)
