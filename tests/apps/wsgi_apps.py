"""WSGI (PEP 3333) test apps for tests/test_wsgi.py.

Every app the server sees goes through ``wsgiref.validate.validator``: a PEP 3333 violation
by the server (an environ value of the wrong type, a missing key, a wrong wsgi.input, ...)
raises AssertionError inside the app, which shows up as a 500 and an ``AssertionError``
traceback in the server log; the tests assert the log has none. The validator also prints
an AssertionError when the response iterable is garbage collected without ``close()``.

- ``app``: a plain function with the WSGI signature (``--interface auto`` detects it) that
  hands every request to the validated router.
- ``lint_app``: ``validator(router)`` itself; its signature is ``(*args, **kw)``, so it is
  served with ``--interface wsgi``.
- ``flask_like``: an instance of a class with ``__call__(self, environ, start_response)``,
  the shape of a Flask app.
- ``sendfile_app``: the one app not wrapped in ``validator`` as a whole, because the
  validator's ``IteratorWrapper`` hides a ``wsgi.file_wrapper`` result from the server (so
  the sendfile path could never be reached); it runs the validator's own checks on the
  environ, status and headers instead.

Every app answers ``/barrier?id=&n=`` (see ``barrier``): the tests' way to know that the
server's threads are done with what they ran before.

Routes match on ``PATH_INFO`` (so they work behind ``--root-path``); any unknown path
answers with the environ as JSON. Observations the test cannot see on the wire are printed
to stdout as ``RECORD <id> <json>`` (the server log captures stdout); ``<id>`` is ``?id=``.
Waits on flag files (``?flag=PATH``, created by the test) are bounded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs
from wsgiref import validate

FLAG_TIMEOUT = 10.0


def record(rid: str, payload) -> None:
    # One os.write per line (atomic on a pipe): print() writes the text and the newline
    # separately, and another thread's log line can land between them.
    line = f"RECORD {rid} {json.dumps(payload, sort_keys=True)}\n"
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), line.encode())


def wait_flag(path: str, timeout: float = FLAG_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.005)
    return False


def _query(environ) -> dict[str, str]:
    parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _text(start_response, body: bytes, status: str = "200 OK",
          ctype: str = "text/plain") -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response, payload, status: str = "200 OK") -> list[bytes]:
    return _text(start_response, json.dumps(payload, sort_keys=True).encode(), status,
                 "application/json")


def _inner(stream):
    """The server's own object behind the validator's wrapper."""
    return getattr(stream, "input", getattr(stream, "errors", stream))


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    return repr(value)


def describe_environ(environ) -> dict:
    """The environ as JSON: ``values`` (repr for non-JSON types) and ``types``."""
    values, types = {}, {}
    for key, value in environ.items():
        if key in ("wsgi.input", "wsgi.errors"):
            value = _inner(value)
        values[key] = _jsonable(value)
        types[key] = type(value).__name__
    inp = _inner(environ["wsgi.input"])
    err = _inner(environ["wsgi.errors"])
    return {
        "values": values,
        "types": types,
        "path_info_latin1_hex": environ.get("PATH_INFO", "").encode("latin-1").hex(),
        "input_attrs": [a for a in ("read", "readline", "readlines", "__iter__")
                        if hasattr(inp, a)],
        "errors_attrs": [a for a in ("write", "writelines", "flush") if hasattr(err, a)],
        "callables": {k: callable(environ.get(k)) for k in
                      ("wsgi.file_wrapper", "wsgi.early_hints")},
    }


# -- body reading ----------------------------------------------------------------------------
def input_ops(environ, start_response):
    """Run one sequence of wsgi.input calls (``?op=``) and report every result."""
    q = _query(environ)
    op = q.get("op", "")
    stream = environ["wsgi.input"]  # the validator's InputWrapper: checks every result is bytes
    inner = _inner(stream)
    out: dict = {}
    if op == "pieces":
        size = int(q.get("n", "7"))
        pieces = []
        for _ in range(100_000):
            data = stream.read(size)
            if not data:
                break
            pieces.append(data)
        out["sizes"] = [len(p) for p in pieces]
        out["data"] = b"".join(pieces).decode("latin-1")
        out["after"] = [stream.read(size).decode("latin-1"), stream.read(1).decode("latin-1"),
                        stream.readline().decode("latin-1"), len(stream.readlines())]
    elif op == "readall":  # read() with no size: the validator only passes read(n) through
        data = inner.read()
        out["data"] = data.decode("latin-1")
        out["type"] = type(data).__name__
        out["after"] = [inner.read().decode("latin-1"), stream.read(5).decode("latin-1"),
                        inner.read(None).decode("latin-1")]
    elif op == "lines":
        out["lines"] = [stream.readline(4).decode("latin-1"),
                        stream.readline().decode("latin-1"),
                        stream.readline(100).decode("latin-1"),
                        stream.readline(-1).decode("latin-1")]
        out["rest"] = [line.decode("latin-1") for line in stream.readlines()]
        out["after"] = [stream.readline().decode("latin-1"), stream.read(3).decode("latin-1")]
    elif op == "iter":  # the server's own __iter__ (the validator's calls readline)
        out["lines"] = [line.decode("latin-1") for line in inner]
        out["after"] = [stream.read(3).decode("latin-1")]
    elif op == "validator-iter":
        out["lines"] = [line.decode("latin-1") for line in stream]
    elif op == "mixed":
        out["first"] = stream.read(3).decode("latin-1")
        out["line"] = stream.readline().decode("latin-1")
        out["rest"] = inner.read().decode("latin-1")
    else:
        raise ValueError(f"unknown op {op!r}")
    return _json(start_response, out)


def slow_sha(environ, start_response):
    """Read the body in small pieces, slowly; answer its sha256 and size."""
    q = _query(environ)
    piece = int(q.get("piece", "65536"))
    pause = float(q.get("pause", "0.002"))
    every = int(q.get("every", "4"))
    if "flag" in q:  # read nothing until the test says so
        record(q["id"], {"event": "waiting"})
        assert wait_flag(q["flag"])
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    count = 0
    for _ in range(10_000_000):
        data = stream.read(piece)
        if not data:
            break
        assert len(data) <= piece
        digest.update(data)
        total += len(data)
        count += 1
        if pause and count % every == 0:
            time.sleep(pause)
    return _json(start_response, {"sha256": digest.hexdigest(), "size": total})


def expect_read(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return _text(start_response, b"got:" + body)


def expect_noread(environ, start_response):
    return _text(start_response, b"not reading", "403 Forbidden")


# -- start_response, write(), exc_info ------------------------------------------------------
def hold_headers(environ, start_response):
    """start_response, then b"" (no head may go out yet), then data once the flag exists."""
    q = _query(environ)
    rid = q["id"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Held", "yes")])

    def body():
        yield b""
        record(rid, {"event": "after-empty"})
        seen = wait_flag(q["flag"])
        record(rid, {"event": "flag", "seen": seen})
        yield b"data-after-flag"

    return body()


def exc_after_headers(environ, start_response):
    q = _query(environ)
    rid = q["id"]

    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first-chunk;"
        try:
            raise ValueError(f"late failure {rid}")
        except ValueError as original:
            try:
                start_response("500 Internal Server Error",
                               [("Content-Type", "text/plain")], sys.exc_info())
            except BaseException as exc:  # noqa: BLE001
                record(rid, {"raised": type(exc).__name__, "same": exc is original})
                raise
            record(rid, {"raised": None})
        yield b"never-sent"

    return body()


def exc_before_headers(environ, start_response):
    rid = _query(environ)["id"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise KeyError(f"early failure {rid}")
    except KeyError:
        write = start_response("503 Service Unavailable",
                               [("Content-Type", "text/plain"), ("X-Replaced", "1")],
                               sys.exc_info())
    record(rid, {"write_callable": callable(write)})
    return [b"app error page"]


def start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain")])
    except BaseException as exc:  # noqa: BLE001
        return [f"raised {type(exc).__name__}".encode()]
    return [b"no error"]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"one;")
    write(b"")
    write(b"two;")
    return [b"three;", b"four"]


def write_then_wait(environ, start_response):
    """write() sends now: the client sees the first part while the app waits on the flag."""
    q = _query(environ)
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-first;")
    seen = wait_flag(q["flag"])
    record(q["id"], {"seen": seen})
    return [b"returned-after"]


# -- close() -----------------------------------------------------------------------------------
class RecordingBody:
    """A response iterable that records its close() and can fail or run long."""

    def __init__(self, rid: str, chunks: int, fail_at: int | None = None,
                 pause: float = 0.0, size: int = 16) -> None:
        self.rid = rid
        self.chunks = chunks
        self.fail_at = fail_at
        self.pause = pause
        self.size = size
        self.produced = 0

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.produced == self.fail_at:
            raise RuntimeError(f"iteration failure {self.rid}")
        if self.produced >= self.chunks:
            raise StopIteration
        if self.pause and self.produced:
            time.sleep(self.pause)
        self.produced += 1
        return (b"chunk%06d;" % self.produced).ljust(self.size, b".")

    def close(self) -> None:
        record(self.rid, {"closed": True, "produced": self.produced})


def close_body(environ, start_response):
    q = _query(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    fail_at = int(q["fail"]) if "fail" in q else None
    return RecordingBody(q["id"], int(q.get("chunks", "3")), fail_at,
                         float(q.get("pause", "0")), int(q.get("size", "16")))


# -- streaming ---------------------------------------------------------------------------------
def sse(environ, start_response):
    q = _query(environ)
    rid = q["id"]
    start_response("200 OK", [("Content-Type", "text/event-stream"),
                              ("Cache-Control", "no-cache")])

    def events():
        yield b"data: event-1\n\n"
        record(rid, {"event": "yielded-1"})
        seen = wait_flag(q["flag"])
        record(rid, {"event": "flag", "seen": seen})
        for n in range(2, 4):
            time.sleep(0.1)
            yield b"data: event-%d\n\n" % n

    return events()


def big_stream(environ, start_response):
    """``chunks`` chunks of ``size`` bytes; records how many were produced, as it goes, and
    the (kernel) id of the thread producing them."""
    q = _query(environ)
    rid = q["id"]
    chunks, size = int(q["chunks"]), int(q["size"])
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def body():
        block = b"x" * size
        try:
            for n in range(1, chunks + 1):
                record(rid, {"produced": n, "tid": threading.get_native_id()})
                yield block
        finally:
            record(rid, {"finished": True})

    return body()


# -- file_wrapper, early hints -----------------------------------------------------------------
def file_wrapper(environ, start_response):
    q = _query(environ)
    kind = q.get("kind", "file")
    if kind == "file":
        filelike = open(q["path"], "rb")  # noqa: SIM115 - closed by the server via close()
        size = os.fstat(filelike.fileno()).st_size
    else:
        data = open(q["path"], "rb").read()  # noqa: SIM115
        filelike = io.BytesIO(data)
        size = len(data)
    size += int(q.get("extra", "0"))  # > 0: a Content-Length the file cannot fill
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](filelike, 32768)


def early_hints(environ, start_response):
    environ["wsgi.early_hints"]([("Link", "</a.css>; rel=preload")])
    return _text(start_response, b"final body")


# -- errors ------------------------------------------------------------------------------------
def raise_before(environ, start_response):
    raise RuntimeError(f"failure before start_response {_query(environ)['id']}")


def no_start(environ, start_response):
    return []


def errors_stream(environ, start_response):
    rid = _query(environ)["id"]
    errors = environ["wsgi.errors"]
    errors.write(f"ERRLINE one {rid}\n")
    errors.writelines([f"ERRLINE two {rid}\n", f"ERRLINE three {rid}\n"])
    errors.flush()
    return _text(start_response, b"ok")


# -- threads, no-body responses ----------------------------------------------------------------
def slow(environ, start_response):
    q = _query(environ)
    record(q["id"], {"event": "slow-started"})
    seen = wait_flag(q["flag"])
    record(q["id"], {"event": "slow-done", "seen": seen})
    return _text(start_response, b"slow done")


def fast(environ, start_response):
    return _text(start_response, b"fast done")


def status(environ, start_response):
    code = _query(environ)["code"]
    phrase = {"204": "No Content", "304": "Not Modified"}[code]
    start_response(f"{code} {phrase}", [("X-Code", code)])
    return [b"must-not-be-sent"]


def list_app(environ, start_response):
    """A plain list body (the server's short path; the validator's IteratorWrapper would hide
    the list), with the headers the query asks for: date, server, close, length; the
    validator's checks on the environ, status and headers."""
    if environ.get("PATH_INFO") == "/barrier":
        return barrier(environ, start_response)
    validate.check_environ(environ)

    def checked_start_response(status, headers, exc_info=None):
        validate.check_status(status)
        validate.check_headers(headers)
        validate.check_content_type(status, headers)
        return start_response(status, headers)

    query = _query(environ)
    headers = [("Content-Type", "text/plain")]
    if "date" in query:
        headers.append(("Date", "Mon, 01 Jan 2001 00:00:00 GMT"))
    if "server" in query:
        headers.append(("Server", "own"))
    if "close" in query:
        headers.append(("Connection", "close"))
    if "length" in query:
        headers.append(("Content-Length", query["length"]))
    checked_start_response(query.get("status", "200 OK"), headers)
    return [b"own:", b"body"]


def raw_status(environ, start_response):
    """Answers with the status the query gives, unchecked (no validator in front)."""
    from urllib.parse import unquote

    start_response(unquote(environ["QUERY_STRING"]), [("Content-Type", "text/plain")])
    return [b"body"]


def scheduling(environ, start_response):
    """The scheduling policy of the thread running this request (Linux)."""
    import os

    policy = os.sched_getscheduler(0)
    return _json(start_response, {"batch": policy == os.SCHED_BATCH,
                                  "other": policy == os.SCHED_OTHER})


def environ_dump(environ, start_response):
    return _json(start_response, describe_environ(environ))


_BARRIERS: dict[str, threading.Barrier] = {}
_BARRIERS_LOCK = threading.Lock()


def barrier(environ, start_response):
    """``?n=`` requests meet here, one per server thread, before any answers (``?id=`` names
    the meeting). Once all n threads are in, each has finished whatever it ran before: that
    request's iterable closed and let go of, so anything the validator's ``__del__`` printed
    about it is in the log ahead of the RECORD line each thread writes here."""
    q = _query(environ)
    with _BARRIERS_LOCK:
        meeting = _BARRIERS.setdefault(q["id"], threading.Barrier(int(q["n"])))
    arrived = meeting.wait(FLAG_TIMEOUT)  # BrokenBarrierError (a 500): a thread is still busy
    record(q["id"], {"arrived": arrived})
    return _text(start_response, b"met")


ROUTES = {
    "/input": input_ops,
    "/sched": scheduling,
    "/slow-sha": slow_sha,
    "/expect-read": expect_read,
    "/expect-noread": expect_noread,
    "/hold": hold_headers,
    "/exc-after": exc_after_headers,
    "/exc-before": exc_before_headers,
    "/twice": start_twice,
    "/write": write_callable,
    "/write-wait": write_then_wait,
    "/close": close_body,
    "/sse": sse,
    "/big-stream": big_stream,
    "/file": file_wrapper,
    "/hints": early_hints,
    "/raise": raise_before,
    "/no-start": no_start,
    "/errors": errors_stream,
    "/slow": slow,
    "/fast": fast,
    "/status": status,
    "/barrier": barrier,
}


def router(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", ""), environ_dump)
    return handler(environ, start_response)


lint_app = validate.validator(router)


def app(environ, start_response):
    """The validated router behind a plain two-argument function (what auto detects)."""
    return lint_app(environ, start_response)


class FlaskLike:
    """The shape of ``flask.Flask``: an instance whose ``__call__`` takes (environ,
    start_response) and delegates to a ``wsgi_app`` method."""

    def wsgi_app(self, environ, start_response):
        if environ.get("PATH_INFO") == "/who":
            return _text(start_response, b"flask-like")
        return router(environ, start_response)

    def __call__(self, environ, start_response):
        return validate.validator(self.wsgi_app)(environ, start_response)


flask_like = FlaskLike()


# -- sendfile ------------------------------------------------------------------------------------
def sendfile_app(environ, start_response):
    """file_wrapper returned to the server as is (see the module docstring), with the
    validator's checks on what the server hands over and what the app sends. With
    ``?kind=bytesio`` the file's bytes come from memory (no descriptor: iterated)."""
    if environ.get("PATH_INFO") == "/barrier":
        return barrier(environ, start_response)
    validate.check_environ(environ)
    q = _query(environ)

    def checked_start_response(status, headers, exc_info=None):
        validate.check_status(status)
        validate.check_headers(headers)
        validate.check_content_type(status, headers)
        return start_response(status, headers)

    if q.get("kind") == "bytesio":
        with open(q["path"], "rb") as fh:
            filelike = io.BytesIO(fh.read())
    else:
        filelike = open(q["path"], "rb")  # noqa: SIM115 - closed by the server via close()
    skip = int(q.get("skip", "0"))
    if skip:
        # Read (not seek) through the buffered file: the OS offset runs ahead of the
        # Python-level position; PEP 3333 says transmission begins at the current position.
        assert len(filelike.read(skip)) == skip
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    checked_start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](filelike, 32768)
