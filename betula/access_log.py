"""The access log: one line per response, written by the adapter that completed it.

Three shapes, chosen once at startup (``AccessLog.wanted``):

- Betula's own line (the default): ``CLIENT - "METHOD TARGET HTTP/V" STATUS BYTES Nms``
  after the logging prefix (time, pid, level) the error log has too.
- ``--access-log-format``: gunicorn's format, the same atoms with the same meaning, so a
  gunicorn ``access_log_format`` works as it is: ``%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s
  %(b)s "%(f)s" "%(a)s"`` (gunicorn's default). The line is written alone (no prefix).
  ``h`` client address, ``l`` "-", ``u`` the user of Basic authorization (or "-"), ``t``
  the request's time (``[01/Dec/2026:21:04:22 +0000]``), ``r`` the request line, ``m``
  method, ``U`` path, ``q`` query, ``H`` protocol, ``s`` status, ``B`` body bytes sent,
  ``b`` the same or "-" for none, ``f`` Referer, ``a`` User-Agent, ``T`` duration in whole
  seconds, ``M`` in milliseconds, ``D`` in microseconds, ``L`` in decimal seconds, ``p``
  ``<pid>``; ``{name}i`` a request header, ``{name}o`` a response header, ``{name}e`` the
  request's WSGI environ value (WSGI apps) or else the process's environment variable. A missing
  value or an unknown atom is "-"; double quotes in values are escaped.
- ``--access-log-json``: one JSON object a line, with fixed keys (``JSON_KEYS``).

Atoms are computed only when the format names them (``_Atoms`` is a lazy mapping), so a
short format costs little. With no access log (``--no-access-log``, or a log level above
info) ``wanted`` returns None and adapters skip even the timing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from time import perf_counter
from typing import Any

from .http_common import client_label, request_target

__all__ = ["AccessLog", "JSON_KEYS"]

access_logger = logging.getLogger("betula.access")

# The keys of --access-log-json's objects, in order.
JSON_KEYS = ("time", "client", "method", "path", "query", "protocol", "status", "bytes",
             "duration_ms", "referer", "user_agent", "pid")


def _find(headers: Any, name: str) -> str | None:
    """The first value of field ``name`` (lowercase) in (name, value) pairs, bytes or str."""
    if not headers:
        return None
    wanted = name.encode("latin-1")
    for key, value in headers:
        if key.__class__ is bytes:
            if key.lower() == wanted:
                return value.decode("latin-1")
        elif key.lower() == name:
            return str(value)
    return None


class _Atoms:
    """gunicorn's atoms of one response, as a mapping for ``format % atoms``."""

    __slots__ = ("scope", "status", "size", "duration", "response_headers", "environ")

    def __init__(self, scope: dict[str, Any], status: int, size: int, duration: float,
                 response_headers: Any, environ: Any) -> None:
        self.scope = scope
        self.status = status
        self.size = size
        self.duration = duration
        self.response_headers = response_headers
        self.environ = environ

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._value(key)
        except (KeyError, IndexError, TypeError, ValueError):
            value = None
        if value is None:
            return "-"
        if value.__class__ is str and '"' in value:
            value = value.replace('"', '\\"')
        return value

    def _request_header(self, name: str) -> str | None:
        return _find(self.scope.get("headers"), name)

    def _value(self, key: str) -> Any:
        scope = self.scope
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2].lower(), key[-1]
            if kind == "i":
                return self._request_header(name)
            if kind == "o":
                return _find(self.response_headers, name)
            if kind == "e":
                if self.environ is not None:  # a WSGI app's: its environ first
                    for env_key, env_value in self.environ.items():
                        if env_key.lower() == name:
                            return None if env_value is None else str(env_value)
                return next((v for k, v in os.environ.items() if k.lower() == name), None)
            return None
        if key == "h":
            client = scope.get("client")
            return client[0] if client else None
        if key == "l":
            return "-"
        if key == "u":
            return self._user()
        if key == "t":
            started = time.time() - self.duration
            return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(started))
        if key == "r":
            return f"{scope['method']} {request_target(scope)} HTTP/{scope['http_version']}"
        if key == "m":
            return scope["method"]
        if key == "U":
            return scope["raw_path"].decode("latin-1")
        if key == "q":
            return scope["query_string"].decode("latin-1")
        if key == "H":
            return f"HTTP/{scope['http_version']}"
        if key == "s":
            return self.status
        if key == "B":
            return self.size
        if key == "b":
            return str(self.size) if self.size else None
        if key == "f":
            return self._request_header("referer")
        if key == "a":
            return self._request_header("user-agent")
        if key == "T":
            return int(self.duration)
        if key == "M":
            return int(self.duration * 1000)
        if key == "D":
            return int(self.duration * 1_000_000)
        if key == "L":
            return f"{self.duration:.6f}"
        if key == "p":
            return f"<{os.getpid()}>"
        return None

    def _user(self) -> str | None:
        if self.environ is not None and self.environ.get("REMOTE_USER"):
            return str(self.environ["REMOTE_USER"])
        auth = self._request_header("authorization")
        if not auth or auth[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(":")[0] or None


class AccessLog:
    """Writes one line per response on ``betula.access`` (see the module's docstring)."""

    __slots__ = ("format", "json")

    def __init__(self, format: str = "", json_lines: bool = False) -> None:
        self.format = format  # gunicorn's format; "" for Betula's own line
        self.json = json_lines

    @staticmethod
    def wanted(enabled: bool, format: str = "", json_lines: bool = False) -> AccessLog | None:
        """The log when ``--access-log`` is on and its logger would write: else None, so
        adapters skip the timing too."""
        if enabled and access_logger.isEnabledFor(logging.INFO):
            return AccessLog(format, json_lines)
        return None

    @staticmethod
    def check_format(format: str) -> str:
        """``format`` when it is a usable %-format of named atoms (ValueError if not)."""
        try:
            format % _Atoms({"headers": [], "client": None, "method": "GET",
                             "raw_path": b"/", "query_string": b"", "http_version": "1.1"},
                            200, 0, 0.0, (), None)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"not a gunicorn-style format (%(atom)s ...): {exc}") from None
        return format

    def log(self, scope: dict[str, Any], status: int, size: int, started: float,
            response_headers: Any = None, environ: Any = None) -> None:
        duration = perf_counter() - started
        if self.json:
            access_logger.info(self._json(scope, status, size, duration))
        elif self.format:
            access_logger.info("%s", self.format % _Atoms(scope, status, size, duration,
                                                          response_headers, environ))
        else:
            access_logger.info('%s - "%s %s HTTP/%s" %d %d %.2fms', client_label(scope),
                               scope["method"], request_target(scope),
                               scope["http_version"], status, size, duration * 1000.0)

    def websocket(self, scope: dict[str, Any], status: int, started: float | None) -> None:
        """A WebSocket handshake's answer (101, or the app's denial)."""
        if self.json or self.format:
            # The upgrade request, as the formats see any request.
            request = dict(scope, method="GET")
            self.log(request, status, 0, perf_counter() if started is None else started)
            return
        access_logger.info('%s - "WebSocket %s" %d', client_label(scope),
                           request_target(scope), status)

    @staticmethod
    def _json(scope: dict[str, Any], status: int, size: int, duration: float) -> str:
        client = scope.get("client")
        headers = scope.get("headers")
        started = time.time() - duration
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
        return json.dumps({
            "time": f"{stamp}.{int(started % 1 * 1000):03d}Z",
            "client": f"{client[0]}:{client[1]}" if client else None,
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "protocol": f"HTTP/{scope['http_version']}",
            "status": status,
            "bytes": size,
            "duration_ms": round(duration * 1000.0, 3),
            "referer": _find(headers, "referer"),
            "user_agent": _find(headers, "user-agent"),
            "pid": os.getpid(),
        }, ensure_ascii=False)
