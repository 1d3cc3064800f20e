"""The adapter cases (tests/adapter_cases.py), each run over every runner.

A runner carries one request to an app and gives back what a client sees, normalised to
what every HTTP version must agree on (``Outcome``): the final status, the app's own
response fields (the framing and server fields taken out), the body, trailers, 1xx
responses and whether the response completed.

Runners (``RUNNERS``: name -> fixture; a runner is anything with ``facts`` and
``exchange(interface, request)``):

- ``http1``: the real CLI in a subprocess (one server per interface for the module) and raw
  HTTP/1.1 on a new connection per request, read strictly (Content-Length or chunked; a
  body cut short is one whose framing never ended).
- ``memory``: ``betula.exchange.run_exchange`` in this process: the real adapter over the
  in-memory stream, no socket.
- ``h2``: the same servers as ``http1`` (HTTP/2 by prior knowledge on the same port), the
  ``h2`` library as the client (tests/support/h2client.py), a new connection per request:
  the body as DATA frames (``chunks`` one frame each), 1xx as informational HEADERS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from betula.exchange import run_exchange
from tests.adapter_cases import CASES, Case, resolve
from tests.apps import adapter_case_apps as apps
from tests.support.h2client import H2Client
from tests.support.logs import new_id
from tests.support.server import ServerProcess
from tests.support.wire import RawReader

Fields = list[tuple[str, str]]

# Fields that are the protocol's (framing, the connection) or the server's own: never
# compared. Everything else in a response is the app's and must arrive as the app gave it.
NOT_THE_APPS = frozenset({
    "date", "server", "content-length", "transfer-encoding", "connection", "keep-alive",
    "trailer", "te", "upgrade", "proxy-connection",
})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
HOST = "adapter.test"


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None

    def needs_length(self) -> bool:
        """A body sent whole says its length (HTTP/1.1 Content-Length; HTTP/2 may)."""
        return self.chunks is None and (bool(self.body) or self.method in BODY_METHODS)


@dataclass
class Outcome:
    """A response as a client of any HTTP version sees it."""

    status: int | None
    headers: Fields = field(default_factory=list)
    body: bytes = b""
    trailers: Fields = field(default_factory=list)
    informational: list[tuple[int, Fields]] = field(default_factory=list)
    complete: bool = True

    def summary(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return (f"status={self.status} complete={self.complete} headers={self.headers} "
                f"trailers={self.trailers} informational={self.informational} body={body!r}")


def app_fields(pairs: Any) -> Fields:
    """Fields as (lowered str name, str value), the protocol's and server's left out."""
    out = []
    for name, value in pairs:
        name = name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)
        value = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        name = name.lower()
        if name not in NOT_THE_APPS:
            out.append((name, value))
    return out


class Runner(Protocol):
    facts: dict[str, str]  # what RunnerValue expectations resolve to (http_version, ...)

    def exchange(self, interface: str, request: Request) -> Outcome: ...


# -- http1: the real server, raw sockets ---------------------------------------------------------
class HTTP1Runner:
    facts = {"http_version": "1.1", "server_protocol": "HTTP/1.1"}

    def __init__(self, servers: dict[str, ServerProcess]) -> None:
        self.servers = servers

    def exchange(self, interface: str, request: Request) -> Outcome:
        with self.servers[interface].connect() as sock:
            sock.sendall(self.encode(request))
            return self.read(RawReader(sock), request.method)

    @staticmethod
    def encode(request: Request) -> bytes:
        lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{name}: {value}" for name, value in request.headers]
        if request.chunks is not None:
            lines.append("Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in request.chunks if c)
            payload += b"0\r\n\r\n"
        else:
            if request.needs_length():
                lines.append(f"Content-Length: {len(request.body)}")
            payload = request.body
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload

    @staticmethod
    def _fields(reader: RawReader) -> list[tuple[bytes, bytes]]:
        fields = []
        while line := reader.line():
            name, sep, value = line.partition(b":")
            assert sep and name == name.strip(), f"bad field line {line!r}"
            fields.append((name, value.strip()))
        return fields

    def read(self, reader: RawReader, method: str) -> Outcome:
        informational = []
        try:
            while True:
                status_line = reader.line()
                parts = status_line.split(b" ", 2)
                assert parts[0] in (b"HTTP/1.1", b"HTTP/1.0"), f"bad status line {status_line!r}"
                status = int(parts[1])
                fields = self._fields(reader)
                if status >= 200:
                    break
                informational.append((status, app_fields(fields)))
        except ConnectionError:  # closed before a final head
            return Outcome(None, informational=informational, complete=False)
        framing = {name.lower(): value for name, value in fields}
        outcome = Outcome(status, app_fields(fields), informational=informational)
        if method == "HEAD" or status in (204, 304):
            return outcome
        if b"chunked" in framing.get(b"transfer-encoding", b"").lower():
            self._read_chunked(reader, outcome)
        elif b"content-length" in framing:
            length = int(framing[b"content-length"])
            try:
                outcome.body = reader.exact(length)
            except ConnectionError:
                outcome.body, outcome.complete = reader.buf, False
        else:  # framed by the connection's end
            outcome.body = reader.rest()
        return outcome

    def _read_chunked(self, reader: RawReader, outcome: Outcome) -> None:
        parts = []
        try:
            while True:
                size = int(reader.line().split(b";")[0], 16)
                if size == 0:
                    outcome.trailers = app_fields(self._fields(reader))
                    break
                try:
                    parts.append(reader.exact(size))
                except ConnectionError:
                    parts.append(reader.buf)
                    raise
                assert reader.exact(2) == b"\r\n", "chunk data not followed by CRLF"
        except ConnectionError:
            outcome.complete = False
        outcome.body = b"".join(parts)


@pytest.fixture(scope="module")
def http1_runner() -> Iterator[HTTP1Runner]:
    servers = {
        interface: ServerProcess([
            f"tests.apps.adapter_case_apps:{interface}_app", "--interface", interface,
            "--host", "127.0.0.1", "--port", "0", "--threads", "4",
            "--timeout-graceful-shutdown", "2",
        ])
        for interface in ("asgi", "wsgi")
    }
    try:
        for server in servers.values():  # both start at once
            server.start(wait=False)
        for server in servers.values():
            server.wait_ready()
        yield HTTP1Runner(servers)
    finally:
        for server in servers.values():
            if server.proc is not None:
                server.stop()


# -- memory: the in-process stream ----------------------------------------------------------------
class MemoryRunner:
    facts = {"http_version": "1.1", "server_protocol": "HTTP/1.1"}
    APPS = {"asgi": apps.asgi_app, "wsgi": apps.wsgi_app}

    def __init__(self, run_exchange: Callable[..., Any]) -> None:
        self.run_exchange = run_exchange

    def exchange(self, interface: str, request: Request) -> Outcome:
        # As a protocol hands them over: names lowered, values bytes; Host as HTTP/1.1 has.
        headers = [(b"host", HOST.encode())]
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in request.headers]
        if request.needs_length():
            headers.append((b"content-length", str(len(request.body)).encode()))
        response = asyncio.run(self.run_exchange(
            self.APPS[interface], interface=interface, method=request.method,
            target=request.target, headers=tuple(headers), body=request.body,
            http_version=self.facts["http_version"],
            chunks=list(request.chunks) if request.chunks is not None else None))
        return Outcome(
            status=response.status or None,  # 0: no final status came
            headers=app_fields(response.headers),
            body=bytes(response.body),
            trailers=app_fields(response.trailers or ()),
            informational=[(status, app_fields(fields))
                           for status, fields in response.informational or ()],
            complete=bool(response.complete) and not response.aborted,
        )


@pytest.fixture(scope="module")
def memory_runner() -> MemoryRunner:
    return MemoryRunner(run_exchange)


# -- h2: the same servers, HTTP/2 by prior knowledge --------------------------------------------
# Request fields HTTP/2 does not carry (RFC 9113 §8.2.2); TE only as "trailers".
_CONNECTION_FIELDS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                      "upgrade", "host"}


class H2Runner:
    facts = {"http_version": "2", "server_protocol": "HTTP/2"}

    def __init__(self, servers: dict[str, ServerProcess]) -> None:
        self.servers = servers

    def exchange(self, interface: str, request: Request) -> Outcome:
        server = self.servers[interface]
        headers = tuple((name.lower(), value) for name, value in request.headers
                        if name.lower() not in _CONNECTION_FIELDS
                        and (name.lower() != "te" or value.lower() == "trailers"))
        if request.chunks is None and request.needs_length():
            headers += (("content-length", str(len(request.body))),)
        with H2Client(server.host, server.port) as client:
            has_body = request.chunks is not None or request.needs_length()
            sid = client.request(request.method, request.target, headers, authority=HOST,
                                 body=request.body if has_body and request.chunks is None
                                 else None, chunks=request.chunks)
            result = client.results[sid]
            try:
                client.read_until(lambda: result.ended or result.reset is not None
                                  or client.closed)
            except AssertionError:
                pass  # (a response never completed: the outcome says so)
        return Outcome(
            status=result.status or None,
            headers=app_fields([(n, v) for n, v in result.headers if not n.startswith(b":")]),
            body=result.body,
            trailers=app_fields(result.trailers),
            informational=[(status, app_fields([(n, v) for n, v in fields
                                                if not n.startswith(b":")]))
                           for status, fields in result.informational],
            complete=result.ended and result.reset is None,
        )


@pytest.fixture(scope="module")
def h2_runner(http1_runner: HTTP1Runner) -> H2Runner:
    return H2Runner(http1_runner.servers)


# -- the registry: runner name -> the fixture that gives it --------------------------------------
RUNNERS: dict[str, str] = {
    "http1": "http1_runner",
    "memory": "memory_runner",
    "h2": "h2_runner",
}


@pytest.fixture(params=list(RUNNERS))
def runner(request) -> Runner:
    return request.getfixturevalue(RUNNERS[request.param])


# -- checking a case -------------------------------------------------------------------------------
def mismatches(case: Case, outcome: Outcome, facts: dict[str, str]) -> list[str]:
    """What in ``outcome`` differs from what ``case`` expects (empty: the case holds)."""
    found = []
    if outcome.status != case.expect_status:
        found.append(f"status {outcome.status}, expected {case.expect_status}")
    if outcome.complete != case.expect_complete:
        found.append(f"complete={outcome.complete}, expected {case.expect_complete}")
    if case.expect_body is not None and outcome.body != case.expect_body:
        found.append(f"body {outcome.body[:200]!r} (len {len(outcome.body)}), expected "
                     f"{case.expect_body[:200]!r} (len {len(case.expect_body)})")
    if case.expect_json is not None:
        try:
            report = json.loads(outcome.body)
        except ValueError:
            found.append(f"body is not JSON: {outcome.body[:200]!r}")
        else:
            for key, expected in resolve(dict(case.expect_json), facts).items():
                if report.get(key, "<missing>") != expected:
                    found.append(f"app saw {key}={report.get(key, '<missing>')!r}, "
                                 f"expected {expected!r}")
    for name in dict.fromkeys(name for name, _ in case.expect_headers):
        got = [v for n, v in outcome.headers if n == name]
        want = [v for n, v in case.expect_headers if n == name]
        if got != want:
            found.append(f"field {name}: {got}, expected {want}")
    if outcome.trailers != list(case.expect_trailers):
        found.append(f"trailers {outcome.trailers}, expected {list(case.expect_trailers)}")
    informational = [(status, list(fields)) for status, fields in case.expect_informational]
    if outcome.informational != informational:
        found.append(f"1xx {outcome.informational}, expected {informational}")
    return found


def run_case(runner: Runner, case: Case) -> list[str]:
    rid = new_id()
    request = Request(case.method, case.target.replace("{id}", rid), case.headers, case.body,
                      case.chunks)
    outcome = runner.exchange(case.interface, request)
    found = mismatches(case, outcome, runner.facts)
    if case.recall is not None:
        after = runner.exchange(case.interface, Request("GET", f"/recall?id={rid}"))
        report = json.loads(after.body) if after.status == 200 else {}
        for key, expected in case.recall.items():
            if report.get(key, "<missing>") != expected:
                found.append(f"afterwards the app noted {report}, expected {key}={expected!r}")
    if found:
        found.append("got: " + outcome.summary())
    return found


def _params() -> list[Any]:
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(
        strict=True, reason=f"known bug: {case.known_bug}")] if case.known_bug else [])
        for case in CASES]


@pytest.mark.parametrize("case", _params())
def test_adapter_case(runner: Runner, case: Case) -> None:
    found = run_case(runner, case)
    assert not found, f"{case.id} ({case.spec}):\n  " + "\n  ".join(found)
