"""Black-box fixtures: the real ``betula`` CLI in a subprocess, talked to over real sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LISTEN_RE = re.compile(r"Listening on (\S+)")
# Bytes read past the end of one response, kept for the next read_response on that socket.
_LEFTOVER: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


class ServerProcess:
    """A running ``python -m betula`` with its combined log captured line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        self.args = args
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.env = full_env
        self.cwd = str(cwd or ROOT)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.returncode: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, wait: bool = True, timeout: float = 20.0, pass_fds: tuple[int, ...] = ()
              ) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "betula", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=self.env, cwd=self.cwd, pass_fds=pass_fds,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if wait:
            self.wait_ready(timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_ready(self, timeout: float = 20.0) -> None:
        line = self.wait_for_log(r"serving", timeout)
        if line is None:
            raise RuntimeError("server did not start:\n" + self.log)
        for text in self.lines:
            match = LISTEN_RE.search(text)
            if match:
                self.url = match.group(1)
                if self.url.startswith(("http://", "https://")):
                    hostport = self.url.split("://", 1)[1]
                    host, _, port = hostport.rpartition(":")
                    self.host = host.strip("[]")
                    self.port = int(port)
                break

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str | None:
        """Wait until a log line matches ``pattern``; None if the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self.proc is not None and self.proc.poll() is not None:
                    # drain what the pump thread still has
                    self._cond.wait(0.2)
                    if len(self.lines) == seen:
                        return None
                    continue
                self._cond.wait(min(remaining, 0.2))

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("server did not exit in time:\n" + self.log) from None
        time.sleep(0.05)  # let the pump thread read the last lines
        return self.returncode

    # -- clients ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.url is not None
        return self.url

    def connect(self, timeout: float = 10.0) -> socket.socket:
        assert self.host is not None and self.port is not None
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock


def betula(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
           ) -> ServerProcess:
    """A not-yet-started server; add ``--port 0`` yourself or use the ``serve`` fixture."""
    return ServerProcess(list(args), env=env, cwd=cwd)


@pytest.fixture
def serve() -> Iterator:
    """``serve("tests.apps.basic:app", "--flag", ...)`` starts the CLI on a free port."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True,
              port: bool = True, cwd: str | Path | None = None) -> ServerProcess:
        argv = list(args)
        if port and "--port" not in argv and "--uds" not in argv and "--fd" not in argv:
            argv += ["--port", "0"]
        server = ServerProcess(argv, env=env, cwd=cwd)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGINT)


def recv_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the peer closes (or ``timeout``); return everything read."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str],
                                                                         list[tuple[str, str]],
                                                                         bytes]:
    """Read one HTTP/1.1 response (Content-Length or chunked framing) from ``sock``.

    Returns (status, headers as a lower-cased dict, headers as a list in order, body).
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
                while reader.line():
                    pass
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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0,
            pass_fds: tuple[int, ...] = (), cwd: str | Path | None = None) -> tuple[int, str]:
    """Run ``python -m betula ARGS`` to completion (for invocations that must exit).

    The inherited environment loses its BETULA_* variables so each test sets its own.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BETULA_")}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run([sys.executable, "-m", "betula", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                              check=False, env=full_env, cwd=str(cwd or ROOT), timeout=timeout,
                              pass_fds=pass_fds)
    except subprocess.TimeoutExpired as exc:
        out = exc.output or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise AssertionError(f"betula {' '.join(args)} did not exit; output:\n{out}") from None
    return proc.returncode, proc.stdout


def one_error_line(output: str) -> str:
    """The output is exactly one non-empty line and no traceback; return that line."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{output}"
    return lines[0]


def new_id() -> str:
    """A fresh id for one test's records in a shared server's log."""
    return uuid.uuid4().hex[:12]


def wait_record(srv: ServerProcess, rid: str, marker: str = "RECORD",
                timeout: float = 10.0) -> dict:
    """The JSON an app logged as ``MARKER <rid> {...}`` (what only the app can see)."""
    line = srv.wait_for_log(rf"{marker} {re.escape(rid)} ", timeout)
    assert line is not None, f"the app recorded nothing for {rid}:\n{srv.log[-4000:]}"
    # raw_decode: with --workers another process's output may follow on the same line
    return json.JSONDecoder().raw_decode(line.split(f"{marker} {rid} ", 1)[1])[0]
