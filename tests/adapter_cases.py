"""Adapter cases as data: what the ASGI ``http`` adapter and the WSGI adapter must do,
whichever stream carries them (tests/test_adapter_cases.py runs each case over every
runner: HTTP/1.1 through the real server, the in-memory stream, later HTTP/2).

A case states only what every HTTP version must agree on: the final status, the body, the
app's own response fields, trailers, 1xx responses, whether the response completed, and
what the app saw (its JSON report). Framing (status lines, Content-Length or chunking,
Date/Server, connection handling) is each protocol's business and is left out on both
sides of the comparison. The apps are tests/apps/adapter_case_apps.py; the first path
segment of ``target`` picks the behaviour.

Specs: ASGI 3.0 / spec 2.4, https://asgi.readthedocs.io/en/latest/specs/www.html (and the
extensions page: early hints, trailers); PEP 3333 for WSGI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.apps.adapter_case_apps import BLOCK, PAYLOAD

__all__ = ["CASES", "Case", "RunnerValue", "HTTP_VERSION", "SERVER_PROTOCOL", "resolve"]

Fields = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunnerValue:
    """An expected value that depends on the runner (its HTTP version), not on the case."""

    key: str

    def __repr__(self) -> str:
        return f"<{self.key} of the runner>"


HTTP_VERSION = RunnerValue("http_version")  # scope["http_version"]: "1.1", "2"
SERVER_PROTOCOL = RunnerValue("server_protocol")  # environ["SERVER_PROTOCOL"]: "HTTP/1.1"


def resolve(value: Any, facts: Mapping[str, Any]) -> Any:
    """``value`` with every RunnerValue in it replaced by the runner's fact."""
    if isinstance(value, RunnerValue):
        return facts[value.key]
    if isinstance(value, dict):
        return {k: resolve(v, facts) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v, facts) for v in value)
    return value


@dataclass(frozen=True)
class Case:
    """One request and what must come of it.

    ``target`` may hold ``{id}``: the runner puts a fresh id there (and in ``recall``'s
    request), so a case can ask the app afterwards what it noted after the response.
    ``chunks``: the request body arrives in these pieces (HTTP/1.1 sends them chunked); the
    runner adds the framing fields a body needs (Content-Length) itself.
    """

    name: str
    interface: str  # "asgi" | "wsgi"
    target: str
    method: str = "GET"
    headers: Fields = ()
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None
    expect_status: int = 200
    expect_body: bytes | None = None  # None: not checked (a 500's text is the server's)
    expect_json: Mapping[str, Any] | None = None  # keys the JSON body must have, as given
    # The app's response fields to check (lowered names): for each name given, the values
    # that arrived under it, in order, must be these (repeats kept).
    expect_headers: Fields = ()
    expect_trailers: Fields = ()  # exactly these (none unless given)
    expect_informational: tuple[tuple[int, Fields], ...] = ()  # 1xx, in order
    expect_complete: bool = True  # False: the response was cut short
    recall: Mapping[str, Any] | None = None  # what GET /recall?id= then reports
    spec: str = ""  # the rule the case checks
    # A known server bug makes the case fail on every runner (it is the adapter's): the case
    # runs as a strict xfail, so the fix shows up as an XPASS and this note goes.
    known_bug: str = ""

    @property
    def id(self) -> str:
        return f"{self.interface}-{self.name}"


def A(name: str, target: str, **kw: Any) -> Case:  # noqa: N802 - table shorthand
    return Case(name, "asgi", target, **kw)


def W(name: str, target: str, **kw: Any) -> Case:  # noqa: N802 - table shorthand
    return Case(name, "wsgi", target, **kw)


TE = (("TE", "trailers"),)
MIB = bytes(range(251)) * 4177 + b"tail"  # ~1 MiB, not a multiple of any block size
MIB_REPORT = {"size": len(MIB), "sum": sum(MIB) % 65521}
LINES = b"line1\nline2\nlast"
CUT = {"expect_body": b"partial", "expect_complete": False}
ERROR_500 = {"expect_status": 500}


CASES: tuple[Case, ...] = (
    # -- ASGI: the http scope ---------------------------------------------------------------
    A("scope-basics", "/scope", expect_json={
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": HTTP_VERSION, "method": "GET", "scheme": "http", "path": "/scope",
        "raw_path": "/scope", "raw_path_type": "bytes", "query_string": "",
        "query_string_type": "bytes", "root_path": ""},
      spec="scope keys and types; query_string b'' when there is none; root_path ''"),
    A("scope-path-decoding", "/scope/caf%C3%A9%20x?a=1&b=%20%2F", expect_json={
        "path": "/scope/café x", "raw_path": "/scope/caf%C3%A9%20x",
        "query_string": "a=1&b=%20%2F"},
      spec="path: percent-decoded UTF-8; raw_path: the bytes sent, without the query"),
    A("scope-encoded-slash", "/scope/a%2Fb", expect_json={
        "path": "/scope/a/b", "raw_path": "/scope/a%2Fb"},
      spec="%2F decodes in path and stays in raw_path"),
    A("scope-method", "/scope", method="PATCH", body=b"x", expect_json={"method": "PATCH"},
      spec="method: upper-case str as sent"),
    A("scope-headers", "/scope",
      headers=(("X-Dup", "first"), ("X-Mixed-CASE", "Value Kept"), ("X-Dup", "second"),
               ("X-Latin", "\xe9t\xe9"), ("X-Blank", "")),
      expect_json={
          "x_headers": [["x-dup", "first"], ["x-mixed-case", "Value Kept"],
                        ["x-dup", "second"], ["x-latin", "\xe9t\xe9"], ["x-blank", ""]],
          "headers_are_byte_pairs": True, "header_names_lowered": True},
      spec="headers: (name, value) byte pairs, names lowered, order and repeats kept, "
           "values untouched"),
    # -- ASGI: the request body -------------------------------------------------------------
    A("body-empty", "/echo", expect_json={
        "body": "", "all_http_request": True, "last_more": False, "all_bytes": True},
      spec="no body: one http.request with body b'' and more_body False"),
    A("body-whole", "/echo", method="POST", body=b"hello body", expect_json={
        "body": "hello body", "all_http_request": True, "last_more": False,
        "earlier_more": True, "all_bytes": True, "content_length": "10"},
      spec="the body, its last message without more_body"),
    A("body-chunks", "/echo", method="POST", chunks=(b"first,", b"second,", b"third"),
      expect_json={"body": "first,second,third", "all_http_request": True,
                   "last_more": False, "earlier_more": True, "all_bytes": True},
      spec="a body in pieces: more_body on every message but the last"),
    A("body-large", "/echo-size", method="POST", body=MIB, expect_json=MIB_REPORT,
      spec="a body larger than the adapter's buffer (reading pauses and resumes)"),
    A("body-large-chunks", "/echo-size", method="POST",
      chunks=tuple(MIB[i:i + 65536] for i in range(0, len(MIB), 65536)),
      expect_json=MIB_REPORT, spec="a large body in pieces"),
    # -- ASGI: responses --------------------------------------------------------------------
    A("response-whole", "/whole", expect_body=b"hello, world",
      expect_headers=(("content-type", "text/plain"), ("x-custom", "yes")),
      spec="start + one body message; the app's fields arrive"),
    A("response-streamed", "/streamed", expect_body=b"one two three",
      expect_headers=(("x-streamed", "1"),), spec="body messages with more_body"),
    A("response-big", "/big", expect_body=BLOCK * 16, spec="a 1 MiB streamed body"),
    A("response-empty", "/empty", expect_body=b"", expect_headers=(("x-empty", "1"),),
      spec="an empty body"),
    A("response-no-body-key", "/no-body-key", expect_body=b"",
      spec="http.response.body without 'body': b'' (the default)"),
    A("response-head", "/whole", method="HEAD", expect_body=b"",
      expect_headers=(("x-custom", "yes"),), spec="HEAD: the app's body is not sent"),
    A("response-204", "/status/204", expect_status=204, expect_body=b"",
      expect_headers=(("x-code", "204"),), spec="204: no body"),
    A("response-304", "/status/304", expect_status=304, expect_body=b"",
      expect_headers=(("etag", '"v1"'),), spec="304: no body"),
    A("response-app-length", "/app-length", expect_body=b"hello world",
      spec="the app's Content-Length with a streamed body"),
    A("response-repeated-fields", "/repeated", expect_body=b"ok",
      expect_headers=(("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-one", "1")),
      spec="repeated response fields kept, in order"),
    A("response-trailers", "/trailers", headers=TE, expect_body=b"part one, part two",
      expect_trailers=(("x-checksum", "abc123"),),
      spec="http.response.trailers extension (client sent TE: trailers)"),
    A("response-trailers-split", "/trailers-split", headers=TE, expect_body=b"data",
      expect_trailers=(("x-first", "1"), ("x-second", "2")),
      spec="trailers over two messages (more_trailers)"),
    A("response-pathsend", "/pathsend", expect_body=PAYLOAD, expect_headers=(("x-file", "1"),),
      spec="http.response.pathsend extension: the file is the body"),
    A("response-early-hint", "/early-hint", expect_body=b"hinted",
      expect_informational=((103, (("link", "</style.css>; rel=preload"),)),),
      spec="http.response.early_hint extension: a 103 with the links, then the response"),
    # -- ASGI: errors -----------------------------------------------------------------------
    A("error-before-start", "/raise-before", **ERROR_500,
      spec="an exception before http.response.start: 500"),
    A("error-return-without-response", "/return-nothing", **ERROR_500,
      spec="the app returns without starting a response: 500"),
    A("error-after-head", "/raise-after", **CUT,
      spec="an exception after the response started: cut short"),
    A("error-return-unfinished", "/return-unfinished", **CUT,
      spec="the app returns with more_body still promised: cut short"),
    A("error-body-before-start", "/body-before-start", expect_json={"error": "RuntimeError"},
      spec="http.response.body before http.response.start: send() raises"),
    A("error-start-twice", "/start-twice", expect_json={"error": "RuntimeError"},
      spec="http.response.start twice: send() raises"),
    A("error-trailers-unannounced", "/trailers-unannounced",
      expect_json={"error": "RuntimeError"},
      spec="http.response.trailers without trailers=True: send() raises"),
    A("error-hint-after-start", "/hint-after-start", expect_json={"error": "RuntimeError"},
      spec="early hint after the start: send() raises"),
    A("error-send-after-complete", "/send-after-complete?id={id}", expect_body=b"done",
      recall={"error": "RuntimeError"},
      spec="a body message after the response completed: send() raises"),
    A("error-bad-header-name", "/bad-header-name", **ERROR_500,
      spec="a field name that is not a token: the app's error, 500"),
    A("error-bad-header-value", "/bad-header-value", **ERROR_500,
      spec="CR/LF in a field value (response splitting): the app's error, 500"),
    A("error-bad-status", "/bad-status", **ERROR_500, spec="a status that is not an int: 500"),
    # -- WSGI: the environ ------------------------------------------------------------------
    W("environ-basics", "/environ?a=1", expect_json={
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/environ",
        "QUERY_STRING": "a=1", "SERVER_PROTOCOL": SERVER_PROTOCOL, "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "", "url_scheme": "http", "version": [1, 0],
        "input_terminated": True, "native_strings": [],
        "has": {"SERVER_NAME": True, "SERVER_PORT": True, "HTTP_CONTENT_LENGTH": False,
                "HTTP_CONTENT_TYPE": False, "HTTP_X_UNDER_SCORE": False}},
      spec="CGI keys as native strings; SCRIPT_NAME '' at the root"),
    W("environ-path-latin1", "/environ/caf%C3%A9%20x?q=%C3%A9", expect_json={
        "PATH_INFO": "/environ/caf\xc3\xa9 x", "QUERY_STRING": "q=%C3%A9"},
      spec="PATH_INFO: percent-decoded bytes as latin-1; QUERY_STRING as sent"),
    W("environ-encoded-slash", "/environ/a%2Fb", expect_json={"PATH_INFO": "/environ/a/b"},
      spec="%2F decodes in PATH_INFO"),
    W("environ-content", "/environ", method="POST", body=b"hello",
      headers=(("Content-Type", "text/plain"),), expect_json={
          "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5", "CONTENT_TYPE": "text/plain",
          "has": {"SERVER_NAME": True, "SERVER_PORT": True, "HTTP_CONTENT_LENGTH": False,
                  "HTTP_CONTENT_TYPE": False, "HTTP_X_UNDER_SCORE": False}},
      spec="CONTENT_LENGTH/CONTENT_TYPE, never as HTTP_CONTENT_*"),
    W("environ-joined-fields", "/environ",
      headers=(("X-Dup", "first"), ("X-Single", "1"), ("X-Dup", "second"),
               ("X-Latin", "\xe9t\xe9")),
      expect_json={"http": {"HTTP_X_DUP": "first, second", "HTTP_X_SINGLE": "1",
                            "HTTP_X_LATIN": "\xe9t\xe9"}},
      spec="repeated fields joined with ', ' (RFC 9110 5.3); values as latin-1"),
    W("environ-cookie", "/environ", headers=(("Cookie", "a=1"), ("Cookie", "b=2")),
      expect_json={"cookie": "a=1; b=2"}, spec="repeated Cookie fields joined with '; '"),
    W("environ-underscore-dropped", "/environ", headers=(("X_Under_Score", "spoof"),),
      expect_json={"has": {"SERVER_NAME": True, "SERVER_PORT": True,
                           "HTTP_CONTENT_LENGTH": False, "HTTP_CONTENT_TYPE": False,
                           "HTTP_X_UNDER_SCORE": False}},
      spec="a field name with '_' is dropped (HTTP_X_A would be ambiguous)"),
    # -- WSGI: wsgi.input -------------------------------------------------------------------
    W("input-empty", "/read", expect_json={"body": "", "again": "", "content_length": ""},
      spec="no body: read() is b''"),
    W("input-read", "/read", method="POST", body=b"hello body",
      expect_json={"body": "hello body", "again": "", "content_length": "10"},
      spec="read() gives the body, then b''"),
    W("input-read-chunks", "/read", method="POST", chunks=(b"first,", b"second,", b"third"),
      expect_json={"body": "first,second,third", "again": ""},
      spec="a body in pieces, read() whole (wsgi.input_terminated)"),
    W("input-read-n", "/read-n", method="POST", body=b"abcdefghij",
      expect_json={"pieces": ["abcd", "efgh", "ij"], "after": ""}, spec="read(n)"),
    W("input-read-n-chunks", "/read-n", method="POST", chunks=(b"ab", b"cdefg", b"hij"),
      expect_json={"pieces": ["abcd", "efgh", "ij"], "after": ""},
      spec="read(n) across the pieces of the body"),
    W("input-readline", "/readline", method="POST", body=LINES,
      expect_json={"lines": ["lin", "e1\n", "line2\n", "last", ""]},
      spec="readline(limit) and readline()"),
    W("input-readlines", "/readlines", method="POST", body=LINES,
      expect_json={"lines": ["line1\n", "line2\n", "last"]}, spec="readlines()"),
    W("input-iterate-chunks", "/iterate", method="POST", chunks=(b"li", b"ne1\nline", b"2\nlast"),
      expect_json={"lines": ["line1\n", "line2\n", "last"]},
      spec="iterating wsgi.input gives lines, whatever the pieces"),
    W("input-large", "/read-size", method="POST", body=MIB, expect_json=MIB_REPORT,
      spec="a body larger than the adapter's buffer"),
    # -- WSGI: responses --------------------------------------------------------------------
    W("response-list", "/whole", expect_body=b"hello, world",
      expect_headers=(("content-type", "text/plain"), ("x-custom", "yes")),
      spec="a list body, the app's fields"),
    W("response-list-direct", "/direct/whole", expect_body=b"hello, world",
      expect_headers=(("content-type", "text/plain"), ("x-custom", "yes")),
      spec="a list body as the app returned it (the adapter's whole-response path)"),
    W("response-head-direct", "/direct/whole", method="HEAD", expect_body=b"",
      expect_headers=(("x-custom", "yes"),), spec="HEAD on the whole-response path"),
    W("response-304-direct", "/direct/status/304", expect_status=304, expect_body=b"",
      expect_headers=(("etag", '"v1"'),), spec="304 on the whole-response path"),
    W("response-app-length-direct", "/direct/app-length-list", expect_body=b"hello world",
      spec="the app's Content-Length on the whole-response path"),
    W("response-file-wrapper", "/file-wrapper", expect_body=PAYLOAD,
      expect_headers=(("x-file", "1"),), spec="wsgi.file_wrapper over a real file"),
    W("response-generator", "/generator", expect_body=b"one two three",
      expect_headers=(("x-generated", "1"),), spec="a generator body"),
    W("response-big", "/big", expect_body=BLOCK * 16, spec="a 1 MiB generator body"),
    W("response-write", "/write", expect_body=b"written then returned",
      expect_headers=(("x-written", "1"),),
      spec="the write() callable, then the returned iterable"),
    W("response-empty", "/empty", expect_body=b"", expect_headers=(("x-empty", "1"),),
      spec="an empty list"),
    W("response-head", "/generator", method="HEAD", expect_body=b"",
      expect_headers=(("x-generated", "1"),), spec="HEAD: the app's body is not sent"),
    W("response-204", "/status/204", expect_status=204, expect_body=b"",
      expect_headers=(("x-code", "204"),), spec="204: no body"),
    W("response-304", "/status/304", expect_status=304, expect_body=b"",
      expect_headers=(("etag", '"v1"'),), spec="304: no body"),
    W("response-418", "/status/418", expect_status=418, expect_body=b"body",
      spec="a status the app chose, whatever its phrase"),
    W("response-app-length", "/app-length", expect_body=b"hello world",
      spec="the app's Content-Length with an iterated body"),
    W("response-repeated-fields", "/repeated", expect_body=b"ok",
      expect_headers=(("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-one", "1")),
      spec="repeated response fields kept, in order"),
    W("response-early-hint", "/early-hint", expect_body=b"hinted",
      expect_informational=((103, (("link", "</style.css>; rel=preload"),)),),
      spec="wsgi.early_hints: a 103, then the response"),
    W("response-held-until-data", "/held-then-data", expect_body=b"late data",
      spec="empty chunks before the first data"),
    W("response-close-called", "/closing?id={id}", expect_body=b"closing body",
      recall={"closed": True}, spec="the iterable's close() is called"),
    # -- WSGI: errors -----------------------------------------------------------------------
    W("error-before-start", "/raise-before", **ERROR_500,
      spec="an exception before start_response: 500"),
    W("error-after-start", "/raise-after-start", **ERROR_500,
      spec="an exception after start_response, before any body: 500"),
    W("error-after-head", "/raise-after-head", **CUT,
      spec="an exception after the first data: cut short"),
    W("error-held-head", "/held-then-raise", **ERROR_500,
      spec="the head waits for the first non-empty chunk: an error before it is a 500"),
    W("error-close-on-failure", "/closing-failure?id={id}", **CUT, recall={"closed": True},
      spec="close() is called when the iterable fails too"),
    W("error-no-start-response", "/no-start", **ERROR_500,
      spec="an app that returns without calling start_response: 500"),
    W("error-start-twice", "/start-twice", expect_json={"raised": True},
      spec="start_response twice without exc_info: an error in the app"),
    W("error-exc-info-replaces", "/exc-info-replaces", expect_status=500,
      expect_body=b"error page", expect_headers=(("x-replaced", "yes"),),
      spec="start_response with exc_info before the head: the new status replaces it"),
    W("error-exc-info-after-head", "/exc-info-after-head", **CUT,
      spec="start_response with exc_info after the head: re-raised, cut short"),
    W("error-bad-header-name", "/header-name", **ERROR_500,
      spec="a field name that is not a token: 500"),
    W("error-bad-header-value", "/header-value", **ERROR_500,
      spec="CR/LF in a field value: 500"),
    W("error-bad-header-name-streamed", "/header-name-streamed", **ERROR_500,
      spec="a bad field name with an iterated body: still nothing sent, so 500"),
    W("error-first-chunk-over-length", "/first-chunk-too-long", **ERROR_500,
      spec="a first chunk longer than the app's Content-Length: nothing sent yet, so 500"),
    W("error-bad-status", "/invalid-status", **ERROR_500,
      spec="a status without a reason phrase: 500"),
    W("error-str-chunk", "/str-chunk", **ERROR_500, spec="a str body chunk: 500"),
)

assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
