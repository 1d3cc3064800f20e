"""The WSGI environ (PEP 3333) of a request that came as a head: the part shared by a
connection's requests (a template, per app), the target's part and the header fields',
each worked out once and cached; and ``wsgi.file_wrapper``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ..cache import BoundedCache
from ..http_common import TARGET_CACHE_MAX, remember_target, split_target
from .io import ErrorStream

if TYPE_CHECKING:  # pragma: no cover
    from ..endpoint import Endpoint
    from ..protocols.stream import Stream
    from ..worker_state import WorkerState

__all__ = ["ERRORS", "EnvironTemplate", "FileWrapper", "HEADER_ENTRIES", "WSGI_ENVIRON",
           "connection_environ", "environ_template", "parse_target", "remember_entries"]

ERRORS = ErrorStream()


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; served with sendfile when the file
    has a real descriptor."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def fileno(self) -> int | None:
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    def __iter__(self) -> Any:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data


def connection_environ(conn: Stream, state: WorkerState,
                       endpoint: Endpoint) -> dict[str, Any]:
    """The part of the environ shared by every request to one app on one connection."""
    sockname = conn.sockname
    client = conn.client
    return {
        "SERVER_NAME": str(sockname[0]) if sockname else "localhost",
        "SERVER_PORT": str(sockname[1]) if sockname else "0",
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "0",
        "SCRIPT_NAME": endpoint.root_path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": conn.scheme,
        "wsgi.errors": ERRORS,
        "wsgi.multithread": state.pool is None or state.pool.size > 1,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


# _header_entries in C (betula/_h1scan.c), where it was built: the same entries, about a
# fifth of the cost on heads that never repeat.
try:
    from .._h1scan import environ_headers as ENVIRON_HEADERS
except ImportError:  # pragma: no cover - built by pip install on every supported platform
    ENVIRON_HEADERS = None
# The whole environ of a request in C: the template's copy, the target's entries, the
# method and the headers' entries in one call, with nothing cached (a target or a header
# list that never repeats costs no cache work). None for what the Python path decides (a
# target not in origin form or with a percent escape, odd headers), and not used where a
# prefix moves from PATH_INFO to SCRIPT_NAME (EnvironTemplate.direct). Measured on heads
# that never repeat (bench/micro.py --wsgi --unique): see the README's architecture.
try:
    from .._h1scan import wsgi_environ as WSGI_ENVIRON
except ImportError:  # pragma: no cover - built by pip install on every supported platform
    WSGI_ENVIRON = None
if os.environ.get("BETULA_PURE_PYTHON"):
    ENVIRON_HEADERS = WSGI_ENVIRON = None

# Request header name -> environ key ("" for names dropped): work every request would repeat.
# (Values are decoded each time: a latin-1 decode costs less than a cache miss, measured on
# heads that never repeat; a repeated list's entries are kept whole, HEADER_ENTRIES.)
_ENV_KEYS: BoundedCache[bytes, str] = BoundedCache(1024)


# Per app (endpoint): request target -> (PATH_INFO, the environ entries PATH_INFO,
# QUERY_STRING, RAW_URI), with the app's prefixes already moved from PATH_INFO to SCRIPT_NAME.
_TARGETS: dict[Endpoint, BoundedCache[bytes, tuple[str, dict[str, str]]]] = {}


class EnvironTemplate:
    """What the adapter keeps on a stream (``iface_cache``): the environ's part shared by
    every request to one app on one connection, the app's target cache and the prefixes
    moved from PATH_INFO to SCRIPT_NAME."""

    __slots__ = ("endpoint", "environ", "targets", "strips", "direct")

    def __init__(self, endpoint: Endpoint, environ: dict[str, Any],
                 targets: BoundedCache[bytes, tuple[str, dict[str, str]]],
                 strips: tuple[str, ...]) -> None:
        self.endpoint = endpoint
        self.environ = environ
        self.targets = targets
        self.strips = strips
        # WSGI_ENVIRON builds the environ (no prefix to move; the template no HTTP_* key)
        self.direct = WSGI_ENVIRON is not None and not strips \
            and not any(key.startswith("HTTP_") for key in environ)


# id() of a request's header tuple -> (the tuple, its environ entries). The protocol shares
# one tuple between the requests with the same field list (its analysed-head cache), so the
# entries are worked out once per list. The tuple is held with its entries, so its id stays
# its own while the entry lives.
HEADER_ENTRIES: BoundedCache[int, tuple[tuple[tuple[bytes, bytes], ...], dict[str, str]]] = \
    BoundedCache(1024)


def parse_target(targets: BoundedCache[bytes, tuple[str, dict[str, str]]], url: bytes,
                  strips: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    if url in targets.previous:
        return targets.recall(url)  # type: ignore[return-value]
    raw_path, query = split_target(url)
    # PEP 3333: PATH_INFO is the percent-decoded path carried as latin-1.
    path = unquote_to_bytes(raw_path).decode("latin-1") if raw_path.find(b"%") >= 0 \
        else raw_path.decode("latin-1")
    # The mount prefix, and the --root-path when the proxy did not strip it, move from
    # PATH_INFO to SCRIPT_NAME.
    for strip in strips:
        if path == strip or path.startswith(strip + "/"):
            path = path[len(strip):]
    if path == "*":
        path = ""  # OPTIONS *: PATH_INFO must be empty or start with "/" (PEP 3333)
    entries = {"PATH_INFO": path, "QUERY_STRING": query.decode("latin-1"),
               "RAW_URI": url.decode("latin-1")}
    return remember_target(targets, url, (path, entries))


def _header_entries(headers: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """The environ entries (CONTENT_TYPE, CONTENT_LENGTH, HTTP_*) of request headers."""
    entries: dict[str, str] = {}
    keys = _ENV_KEYS
    for name, value in headers:
        key = keys.entries.get(name)
        if key is None:
            key = keys.recall(name)
            if key is None:
                key = _env_key(name)
        if not key:  # a name with "_": dropped (see _env_key), each time
            continue
        text = value.decode("latin-1")
        if key in entries and key[0] == "H":  # repeated HTTP_*: joined (CONTENT_*: last)
            sep = "; " if key == "HTTP_COOKIE" else ", "
            entries[key] = entries[key] + sep + text
        else:
            entries[key] = text
    return entries


def remember_entries(headers: tuple[tuple[bytes, bytes], ...]
                      ) -> tuple[tuple[tuple[bytes, bytes], ...], dict[str, str]]:
    if ENVIRON_HEADERS is not None:
        try:
            entries = ENVIRON_HEADERS(headers)
        except (TypeError, ValueError):  # not a tuple of bytes pairs, a name not ASCII
            entries = _header_entries(headers)
    else:
        entries = _header_entries(headers)
    known = (headers, entries)
    cache = HEADER_ENTRIES
    # Admitted by the fields themselves (an id is reused by the next request's new tuple):
    # a list seen before is kept, by the id of the tuple the protocol now shares.
    if cache.admit(headers):
        if len(cache.entries) >= cache.limit:  # cache.keep(id(headers), known), inline
            cache.rotate()
        cache.entries[id(headers)] = known
    return known


def environ_template(conn: Stream, state: WorkerState, endpoint: Endpoint) -> EnvironTemplate:
    strips = tuple(p for p in (endpoint.path_prefix, endpoint.prefix) if p)
    targets = _TARGETS.get(endpoint)
    if targets is None:
        targets = _TARGETS[endpoint] = BoundedCache(TARGET_CACHE_MAX)
    return EnvironTemplate(endpoint, connection_environ(conn, state, endpoint), targets, strips)


def _env_key(name: bytes) -> str:
    if name == b"content-type":
        key = "CONTENT_TYPE"
    elif name == b"content-length":
        key = "CONTENT_LENGTH"
    elif name.find(b"_") >= 0:
        # HTTP_X_A would be ambiguous between X-A and X_A: drop the underscore form (a
        # header-spoofing vector behind proxies), as gunicorn does.
        key = ""
    else:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    return _ENV_KEYS.keep(name, key)
