"""Raw-socket HTTP/1.1 for tests that check the bytes on the wire."""

from __future__ import annotations

import re
import socket
import time
import weakref
from dataclasses import dataclass

# Bytes read past the end of one response, kept for the next read_response on that socket.
_LEFTOVER: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def request(path: str, method: str = "GET", headers: tuple[str, ...] = ("Host: test",),
            body: bytes = b"", version: str = "1.1") -> bytes:
    """A request's bytes: request line, header lines as given, blank line, body."""
    lines = [f"{method} {path} HTTP/{version}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Everything until the peer closes: (data, closed). ``closed`` is False when the hang
    guard ran out first, so a test can tell a close from a connection left open."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), True
        except TimeoutError:
            return b"".join(chunks), False
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def recv_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the peer closes (or ``timeout``); return everything read."""
    return read_until_closed(sock, timeout)[0]


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 10.0) -> bytes:
    """Read until ``marker`` has arrived; everything read so far."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, f"{marker!r} never came; got {data[:500]!r}"
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}; got {data[:500]!r}"
        data += chunk
    return data


def exchange(srv, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a new connection; read until the server closes it."""
    with srv.connect() as sock:
        sock.sendall(data)
        return recv_until_closed(sock, timeout)


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """A head without its blank line, strictly: (status, [(lower name, value)])."""
    lines = head.split(b"\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0] + b" ")
    assert match, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        assert sep and name == name.strip(), f"bad header line {line!r}"
        headers.append((name.lower(), value.strip()))
    return int(match.group(1)), headers


def split_head(data: bytes) -> tuple[bytes, list[tuple[str, str]], bytes]:
    """(status line, [(lower name, value)] in order, rest) of the first head in ``data``."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data[:300]!r}"
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, rest


def read_head(sock: socket.socket, buf: bytes = b"", timeout: float = 10.0
              ) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read one response head only: (status, header list, bytes read past the head)."""
    sock.settimeout(timeout)
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a full response head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, rest


@dataclass(frozen=True, slots=True)
class Chunked:
    """A chunked body as it stood on the wire."""

    body: bytes
    trailers: bytes       # the trailer section without its final CRLF (b"" when none)
    rest: bytes           # bytes after the body
    complete: bool        # False when the last chunk (or its CRLF) never came


def dechunk(data: bytes) -> Chunked:
    """Decode a chunked body strictly (every chunk's CRLF checked)."""
    parts = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return Chunked(b"".join(parts), b"", b"", False)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        if len(data) < size + 2:
            parts.append(data[:size])
            return Chunked(b"".join(parts), b"", b"", False)
        assert data[size:size + 2] == b"\r\n", "chunk data not followed by CRLF"
        parts.append(data[:size])
        data = data[size + 2:]
    body = b"".join(parts)
    if data.startswith(b"\r\n"):
        return Chunked(body, b"", data[2:], True)
    trailer, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return Chunked(body, b"", b"", False)
    return Chunked(body, trailer, rest, True)


def read_response(sock: socket.socket, timeout: float = 10.0,
                  trailers: list[tuple[str, str]] | None = None
                  ) -> tuple[int, dict[str, str], list[tuple[str, str]], bytes]:
    """Read one HTTP/1.1 response (Content-Length or chunked framing) from ``sock``.

    Returns (status, headers as a lower-cased dict, headers as a list in order, body).
    A trailer section is an error unless the caller passes a ``trailers`` list to collect
    its fields into (so a response that sends trailers where it must not never passes).
    """
    sock.settimeout(timeout)
    reader = _reader(sock)
    while True:
        status_line = reader.line()
        status = int(status_line.split(b" ", 2)[1])
        headers_list: list[tuple[str, str]] = []
        while True:
            line = reader.line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers_list.append((name.strip().lower(), value.strip()))
        if 100 <= status < 200:
            continue  # informational: skip
        break
    headers = dict(headers_list)
    if "content-length" in headers:
        body = reader.exact(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int(reader.line().split(b";")[0], 16)
            if size == 0:
                while line := reader.line():
                    assert trailers is not None, f"unexpected trailer field {line!r}"
                    name, _, value = line.decode("latin-1").partition(":")
                    trailers.append((name.strip().lower(), value.strip()))
                break
            parts.append(reader.exact(size))
            reader.line()
        body = b"".join(parts)
    else:
        body = reader.rest()
    _LEFTOVER[sock] = reader.buf
    return status, headers, headers_list, body


def _reader(sock: socket.socket) -> RawReader:
    """read_response's reader: starts with the bytes left over from the last call."""
    reader = RawReader(sock)
    reader.buf = _LEFTOVER.pop(sock, b"")
    return reader


class RawReader:
    """Buffered reads from a raw socket, for tests that check the framing itself."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def head(self) -> tuple[int, list[tuple[str, str]]]:
        """The next final response's status and headers (1xx responses skipped)."""
        while True:
            status = int(self.line().split(b" ", 2)[1])
            headers = []
            while line := self.line():
                name, _, value = line.decode("latin-1").partition(":")
                headers.append((name.strip().lower(), value.strip()))
            if status >= 200:
                return status, headers

    def chunk(self) -> bytes:
        """One chunk of a chunked body (b"" for the last chunk, trailers consumed)."""
        size = int(self.line().split(b";")[0], 16)
        if size == 0:
            while self.line():
                pass
            return b""
        data = self.exact(size)
        assert self.exact(2) == b"\r\n", "chunk data not followed by CRLF"
        return data

    def rest(self) -> bytes:
        """Everything until the peer closes (a body framed by the connection's end)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            self.buf += data
        data, self.buf = self.buf, b""
        return data

    def chunks(self) -> list[bytes]:
        """The data chunks of a chunked body, as framed on the wire (the last 0 excluded)."""
        chunks = []
        while data := self.chunk():
            chunks.append(data)
        return chunks


