"""Request hooks (``--on-request``, ``--on-response``, ``--on-error``): functions of the
user's, ``module:function``, called around every HTTP request of the apps a worker serves,
ASGI and WSGI alike, streamed responses included.

- ``on_request(request)``: before the app. None (or the request itself): the app runs,
  with the request headers as the hook left them (``request.headers`` is a list the hook
  may change). A response (``Response``, ``(status, headers, body)``, ``(status, body)``):
  sent instead of the app's.
- ``on_response(request, response)``: once a response's status and headers are known,
  before they are sent (an ASGI ``http.response.start``, a WSGI ``start_response``), for
  the app's responses and the ones the hooks produced; ``response.headers`` may be changed
  in place or replaced; the return value is ignored.
- ``on_error(request, exc)``: the app raised before its response started: what it returns
  is the response (None: the server's plain 500). The app's exception is logged either way.

A hook that raises, or returns something that is not a response, is logged (naming it) and
the client gets the server's plain 500, never a hang. A hook may be an ``async def``: an
ASGI app's hooks are awaited in the request's task; a WSGI app's run on the worker's event
loop while the app's thread waits (sync hooks of a WSGI app run in the app's thread, an
ASGI app's on the event loop: keep them quick).

The wrappers go around each endpoint's app once at startup (``RequestHooks.wrap``), and
only when a hook is set: a server without hooks runs no code of this module per request.
WebSocket and lifespan scopes go to the app untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .asgi.http import caused_by_disconnect
from .endpoint import Endpoint
from .importer import import_from_string
from .request_records import (
    Headers,
    Malformed,
    Request,
    Response,
    ResponseHead,
    asgi_fields,
    request_from_environ,
    request_from_scope,
    status_line,
    text_fields,
    to_response,
    update_environ,
)
from .wsgi.environ import FileWrapper

__all__ = ["Headers", "Request", "RequestHookError", "RequestHooks", "Response",
           "ResponseHead"]

logger = logging.getLogger("betula.error")

# (setting, the arguments it is called with)
HOOKS = (("on_request", ("request",)), ("on_response", ("request", "response")),
         ("on_error", ("request", "exc")))

# The server's own 500 (what the protocols' fail_response sends), for a hook that failed.
PLAIN_500 = b"500 Internal Server Error: Internal Server Error\n"
_PLAIN_500_TYPE = "text/plain; charset=utf-8"
_PLAIN_500_FIELDS = [(b"content-type", _PLAIN_500_TYPE.encode()),
                     (b"content-length", str(len(PLAIN_500)).encode())]
_PLAIN_500_STATUS = "500 Internal Server Error"


class RequestHookError(Exception):
    """A request hook could not be loaded; ``str()`` is one line naming the setting."""


# -- loading ------------------------------------------------------------------------------
def _takes(func: Any, count: int) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # (a builtin without a signature: take it on trust)
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


class RequestHooks:
    """The loaded hooks of a worker (None for each one not set) and what runs them."""

    __slots__ = ("on_request", "on_response", "on_error", "specs")

    def __init__(self, hooks: dict[str, Callable[..., Any]], specs: dict[str, str]) -> None:
        self.on_request = hooks.get("on_request")
        self.on_response = hooks.get("on_response")
        self.on_error = hooks.get("on_error")
        self.specs = specs

    @classmethod
    def load(cls, config: Any) -> RequestHooks | None:
        """The hooks the settings name (imported now), or None when none is set.
        ``RequestHookError`` (one line) for a hook that cannot be loaded."""
        hooks: dict[str, Callable[..., Any]] = {}
        specs: dict[str, str] = {}
        for name, params in HOOKS:
            spec = getattr(config, name, None)
            if not spec:
                continue
            where = f"request hook {name}={spec!r}"
            if ":" not in spec:
                raise RequestHookError(f"{where}: expected MODULE:FUNCTION")
            try:
                func = import_from_string(spec)
            except Exception as exc:  # noqa: BLE001 - one line, naming the setting
                raise RequestHookError(f"cannot load {where}: {exc}") from None
            if not callable(func):
                raise RequestHookError(f"{where} is not callable (got {type(func).__name__})")
            if not _takes(func, len(params)):
                raise RequestHookError(f"{where} must take {len(params)} argument"
                                       f"{'s' if len(params) > 1 else ''} "
                                       f"({', '.join(params)})")
            hooks[name] = func
            specs[name] = spec
        return cls(hooks, specs) if hooks else None

    def wrap(self, endpoints: list[Endpoint],
             loop_of: Callable[[], asyncio.AbstractEventLoop | None]) -> None:
        """Put the hooks around each endpoint's app (after any other replacement of the
        app: runners, sub-interpreters). ``loop_of``: the worker's event loop once it
        serves (where a WSGI app's async hooks run)."""
        for endpoint in endpoints:
            if endpoint.interface == "wsgi":
                endpoint.app = WSGIHooks(endpoint.app, self, loop_of)
            else:
                endpoint.app = ASGIHooks(endpoint.app, self)
            endpoint.how += ", request hooks"

    def log_raised(self, name: str) -> None:
        """In an ``except``: the hook's traceback, naming it."""
        logger.exception("request hook %s (%s) raised: answered 500", name, self.specs[name])

    def response_of(self, name: str, result: Any) -> Response | None:
        """What hook ``name`` returned as a Response; None (logged) when it is malformed."""
        try:
            return to_response(result)
        except Malformed as exc:
            logger.error("request hook %s (%s) returned %s: answered 500", name,
                         self.specs[name], exc)
            return None

    def log_malformed(self, name: str, what: str, exc: Malformed) -> None:
        logger.error("request hook %s (%s) left %s: %s: answered 500", name, self.specs[name],
                     what, exc)


# -- ASGI ---------------------------------------------------------------------------------
class ASGIHooks:
    """An ASGI app with the hooks around its ``http`` requests."""

    __slots__ = ("app", "hooks")

    def __init__(self, app: Any, hooks: RequestHooks) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # websocket, lifespan: the app's own
            return await self.app(scope, receive, send)
        hooks = self.hooks
        request = request_from_scope(scope)
        exchange = _ASGIExchange(hooks, request, send)
        if hooks.on_request is not None:
            before = list(request.headers)
            try:
                result = hooks.on_request(request)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                hooks.log_raised("on_request")
                return await exchange.replace()
            if result is not None and result is not request:
                response = hooks.response_of("on_request", result)
                if response is None:
                    return await exchange.replace()
                return await exchange.answer(response)
            if request.headers != before:
                try:
                    fields = asgi_fields(text_fields(request.headers))
                except Malformed as exc:
                    hooks.log_malformed("on_request", "request.headers", exc)
                    return await exchange.replace()
                scope = {**scope, "headers": fields}
        try:
            await self.app(scope, receive, exchange.send)
        except Exception as exc:
            if exchange.started or hooks.on_error is None or caused_by_disconnect(exc):
                raise
            response = await exchange.error_response(exc)
            if response is None:
                raise  # the adapter logs it and answers its 500
            logger.error("Exception in ASGI application", exc_info=exc)
            await exchange.answer(response)
        return None


class _ASGIExchange:
    """One request's ``send`` between the app and the adapter: on_response at the start of
    the response, and the server's 500 in its place when a hook failed."""

    __slots__ = ("hooks", "request", "real_send", "started", "replaced")

    def __init__(self, hooks: RequestHooks, request: Request, send: Any) -> None:
        self.hooks = hooks
        self.request = request
        self.real_send = send
        self.started = False  # a final response's start went to the adapter
        self.replaced = False  # the server's 500 went out in place of the response

    async def send(self, message: dict[str, Any]) -> None:
        if self.replaced:
            return  # (the rest of a response whose start a hook failed on: dropped)
        if not self.started and message["type"] == "http.response.start":
            status = message.get("status")
            if status.__class__ is int and status >= 200:  # (a 1xx is informational)
                if self.hooks.on_response is not None:
                    try:
                        headers = text_fields(list(message.get("headers", ())))
                    except (Malformed, TypeError):
                        headers = None  # (the adapter refuses them: the app's error)
                    if headers is not None:
                        fields = await self._on_response(status, headers)
                        if fields is None:
                            return await self.replace()
                        message = {**message, "headers": fields}
                self.started = True
        await self.real_send(message)

    async def _on_response(self, status: int, headers: Headers
                           ) -> list[tuple[bytes, bytes]] | None:
        head = ResponseHead(status, headers)
        hooks = self.hooks
        try:
            result = hooks.on_response(self.request, head)  # type: ignore[misc]
            if inspect.isawaitable(result):
                await result
        except Exception:
            hooks.log_raised("on_response")
            return None
        try:
            return asgi_fields(text_fields(head.headers))
        except Malformed as exc:
            hooks.log_malformed("on_response", "response.headers", exc)
            return None

    async def replace(self) -> None:
        """The server's plain 500 instead of the response (a hook failed)."""
        self.replaced = self.started = True
        await self.real_send({"type": "http.response.start", "status": 500,
                              "headers": _PLAIN_500_FIELDS})
        await self.real_send({"type": "http.response.body", "body": PLAIN_500})

    async def answer(self, response: Response) -> None:
        """A hook's response (through on_response, as the app's are)."""
        await self.send({"type": "http.response.start", "status": response.status,
                         "headers": asgi_fields(response.headers)})
        await self.send({"type": "http.response.body", "body": response.body})

    async def error_response(self, exc: Exception) -> Response | None:
        hooks = self.hooks
        try:
            result = hooks.on_error(self.request, exc)  # type: ignore[misc]
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            hooks.log_raised("on_error")
            return None
        return None if result is None else hooks.response_of("on_error", result)


# -- WSGI ---------------------------------------------------------------------------------
async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _drop(data: bytes) -> None:
    """The write() of a response the server's 500 replaced."""


class WSGIHooks:
    """A WSGI app with the hooks around it (run in the app's thread)."""

    __slots__ = ("app", "hooks", "loop_of", "guard")

    def __init__(self, app: Any, hooks: RequestHooks,
                 loop_of: Callable[[], asyncio.AbstractEventLoop | None]) -> None:
        self.app = app
        self.hooks = hooks
        self.loop_of = loop_of
        # A streamed body is watched only for what needs it: an error before its first
        # chunk (on_error), a start_response inside it that on_response fails on.
        self.guard = hooks.on_error is not None or hooks.on_response is not None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        hooks = self.hooks
        request = request_from_environ(environ)
        exchange = _WSGIExchange(hooks, request, start_response, self.loop_of)
        if hooks.on_request is not None:
            before = list(request.headers)
            try:
                result = exchange.run(hooks.on_request, request)
            except Exception:
                hooks.log_raised("on_request")
                return exchange.replace()
            if result is not None and result is not request:
                response = hooks.response_of("on_request", result)
                return exchange.replace() if response is None else exchange.answer(response)
            if request.headers != before:
                try:
                    update_environ(environ, before, request.headers)
                except Malformed as exc:
                    hooks.log_malformed("on_request", "request.headers", exc)
                    return exchange.replace()
        try:
            body = self.app(environ, exchange.start_response)
        except Exception as exc:
            return exchange.app_failed(exc)
        if exchange.replaced:
            _close(body)
            return [PLAIN_500]
        if not self.guard or type(body) is list or type(body) is tuple \
                or isinstance(body, FileWrapper):
            return body  # (a list keeps the adapter's one-write path)
        return _GuardedBody(body, exchange)


def _close(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _WSGIExchange:
    """One request's ``start_response`` between the app and the adapter."""

    __slots__ = ("hooks", "request", "real_start", "loop_of", "write", "sent", "replaced")

    def __init__(self, hooks: RequestHooks, request: Request, start_response: Any,
                 loop_of: Callable[[], asyncio.AbstractEventLoop | None]) -> None:
        self.hooks = hooks
        self.request = request
        self.real_start = start_response
        self.loop_of = loop_of
        self.write: Any = None
        self.sent = False  # body bytes went to the adapter: the head is out
        self.replaced = False  # the server's 500 replaced the response

    def run(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Call a hook; an async one runs on the worker's event loop (this thread waits)."""
        result = hook(*args)
        if inspect.isawaitable(result):
            loop = self.loop_of()
            if loop is None:
                raise RuntimeError("no event loop to run an async request hook on")
            result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return result

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        if self.replaced:
            return _drop
        hook = self.hooks.on_response
        fields = None
        if hook is not None and not (exc_info and self.sent) and isinstance(status, str) \
                and status[:3].isdigit() and isinstance(headers, list):
            try:
                fields = text_fields(headers)
            except Malformed:
                pass  # (the adapter refuses them: the app's error)
        if fields is None:
            self.write = self.real_start(status, headers, exc_info)  # (its checks, its errors)
            return self._write
        head = ResponseHead(int(status[:3]), fields)
        try:
            self.run(hook, self.request, head)
        except Exception:
            self.hooks.log_raised("on_response")
            return self._replace_head()
        try:
            fields = text_fields(head.headers)
        except Malformed as exc:
            self.hooks.log_malformed("on_response", "response.headers", exc)
            return self._replace_head()
        self.write = self.real_start(status, fields, exc_info)
        return self._write

    def _write(self, data: bytes) -> None:
        if self.replaced:
            return
        if data:
            self.sent = True
        self.write(data)

    def _replace_head(self) -> Any:
        self.replaced = True
        error = RuntimeError("a request hook failed")  # (exc_info: a second call is allowed)
        self.real_start(_PLAIN_500_STATUS, [(n.decode(), v.decode()) for n, v in
                                            _PLAIN_500_FIELDS], (RuntimeError, error, None))
        return _drop

    def replace(self) -> list[bytes]:
        """The server's plain 500 instead of the response (a hook failed)."""
        self._replace_head()
        return [PLAIN_500]

    def answer(self, response: Response, exc_info: Any = None) -> list[bytes]:
        """A hook's response (through on_response, as the app's are)."""
        self.start_response(status_line(response.status), list(response.headers), exc_info)
        return [PLAIN_500] if self.replaced else [response.body]

    def app_failed(self, exc: Exception) -> list[bytes]:
        """The app raised before its response started: on_error's response, or the
        exception goes on to the adapter (its 500, its log line)."""
        hooks = self.hooks
        if self.sent or self.replaced or hooks.on_error is None:
            raise exc
        try:
            result = self.run(hooks.on_error, self.request, exc)
        except Exception:
            hooks.log_raised("on_error")
            raise exc from None
        response = None if result is None else hooks.response_of("on_error", result)
        if response is None:
            raise exc
        logger.error("Exception in WSGI application", exc_info=exc)
        return self.answer(response, (type(exc), exc, exc.__traceback__))


class _GuardedBody:
    """A streamed WSGI body, watched until its first bytes: an error before them goes to
    on_error; a head on_response failed on ends it with the server's 500."""

    __slots__ = ("body", "exchange")

    def __init__(self, body: Iterable[bytes], exchange: _WSGIExchange) -> None:
        self.body = body
        self.exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        chunks = iter(self.body)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                if exchange.sent or exchange.replaced:
                    raise
                yield from exchange.app_failed(exc)
                return
            if exchange.replaced:
                yield PLAIN_500
                return
            if chunk:
                exchange.sent = True
            yield chunk

    def close(self) -> None:
        _close(self.body)
