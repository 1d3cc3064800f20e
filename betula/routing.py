"""The apps a worker serves and which one answers a request.

An ``Endpoint`` is one app (the whole server, or one ``--mount`` prefix). The ``Router``
gives the protocols two exchange factories, ``http`` and ``websocket``: each takes the
stream and the request's head and returns the adapter's handler for it (``asgi/`` or
``wsgi/``). One app without a prefix is called directly; mounted apps are matched by the
longest prefix of the decoded path. A WebSocket request to a WSGI app, or to no app, is
answered as plain HTTP by that app's HTTP handler.

``--static`` folders are routes too (``static_exchange.StaticExchange`` answers them, no
app): with any, every request is matched (static and mount prefixes together, the longest
wins); without, the single app's factory is the protocols' own, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from .asgi.http import HTTPCycle
from .asgi.websocket import WebSocketCycle
from .endpoint import Endpoint
from .http_common import split_target
from .static import StaticDir
from .static_exchange import StaticExchange
from .worker_state import WorkerState
from .wsgi.http import WSGICycle

__all__ = ["Endpoint", "Route", "Router"]


class Route:
    """One mounted app: its prefix (bytes, matched against the decoded path) and its two
    exchange factories."""

    __slots__ = ("prefix", "http", "websocket")

    def __init__(self, prefix: bytes, http: Callable[..., Any],
                 websocket: Callable[..., Any]) -> None:
        self.prefix = prefix
        self.http = http
        self.websocket = websocket


async def _not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"404 Not Found: no app is mounted at "
                + scope["raw_path"] + b"\n"})


class Router:
    """``http`` and ``websocket``: the factories the protocols call for each request
    (``websocket`` is None with ``--ws none``: upgrade requests are plain HTTP)."""

    def __init__(self, endpoints: list[Endpoint], state: WorkerState, *, websockets: bool = True,
                 root_path: str = "", static: Any = ()) -> None:
        self.state = state
        routes = [Route(e.prefix.encode("utf-8"), self._http(e), self._websocket(e))
                  for e in endpoints]
        # --static (prefix, directory) pairs: a route each, its handler for WebSocket
        # requests too (answered as plain HTTP). Listed first: the sort keeps them ahead
        # of an app at an equal prefix (which startup refuses: static_problem).
        for prefix, directory in static:
            folder = StaticDir(prefix, directory, root_path)
            handler = functools.partial(StaticExchange, state, folder)
            routes.insert(0, Route(folder.prefix, handler, handler))
        self.websocket: Callable[..., Any] | None = None
        if len(routes) == 1 and not endpoints[0].prefix:
            self.http: Callable[..., Any] = routes[0].http
            if websockets:
                self.websocket = routes[0].websocket
        else:
            # Longest prefix first; a prefix matches exactly or when followed by "/".
            routes.sort(key=lambda route: len(route.prefix), reverse=True)
            self._routes = routes
            not_found = self._http(Endpoint(_not_found, "asgi", "not-found", "", root_path))
            self._fallback = Route(b"", not_found, not_found)
            self.http = self._route_http
            if websockets:
                self.websocket = self._route_websocket

    def _http(self, endpoint: Endpoint) -> Callable[..., Any]:
        cycle = WSGICycle if endpoint.interface == "wsgi" else HTTPCycle
        return functools.partial(cycle, self.state, endpoint)

    def _websocket(self, endpoint: Endpoint) -> Callable[..., Any]:
        if endpoint.interface == "wsgi":
            return self._http(endpoint)
        return functools.partial(WebSocketCycle, self.state, endpoint)

    def match(self, url: bytes) -> Route:
        path = split_target(url)[0]
        if path.find(b"%") >= 0:  # prefixes match the decoded path, as the app sees it
            path = unquote_to_bytes(path)
        for route in self._routes:
            prefix = route.prefix
            if not prefix or path == prefix or path.startswith(prefix + b"/"):
                return route
        return self._fallback

    def _route_http(self, stream: Any, method: bytes, url: bytes, *rest: Any) -> Any:
        return self.match(url).http(stream, method, url, *rest)

    def _route_websocket(self, stream: Any, method: bytes, url: bytes, *rest: Any) -> Any:
        return self.match(url).websocket(stream, method, url, *rest)
