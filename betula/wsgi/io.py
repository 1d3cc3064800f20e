"""The WSGI side of the request body and the error stream, shared between the event loop
(which feeds bytes) and the worker thread running the app (which reads them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

__all__ = ["BodyBuffer", "InputStream", "ErrorStream", "EMPTY_INPUT"]

error_logger = logging.getLogger("betula.error")


class BodyBuffer:
    """Bytes handed from the event loop to the app thread, with flow control.

    The loop calls ``feed``/``end``/``abort``; it pauses reading from the socket itself once
    more than ``high_water`` bytes wait here. The app thread ``take``s bytes and calls
    ``on_drained`` (scheduled into the loop) once it has emptied the buffer, so reading
    resumes.
    """

    def __init__(self, high_water: int, on_drained: Callable[[], None],
                 on_first_wait: Callable[[], None] | None = None,
                 chunks: list[bytes] | None = None) -> None:
        self.high_water = high_water
        self._on_drained: Callable[[], None] | None = on_drained
        self._on_first_wait = on_first_wait
        self._cond = threading.Condition(threading.Lock())
        self._chunks: list[bytes] = chunks or []
        self._size = sum(map(len, self._chunks))
        self._ended = False
        self._aborted = False

    # -- event loop side -----------------------------------------------------------------
    def feed(self, data: bytes) -> bool:
        """Add body bytes; True when the loop should pause reading."""
        with self._cond:
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify()
            return self._size > self.high_water

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify()

    # -- app thread side -----------------------------------------------------------------
    def take(self, limit: int = -1) -> bytes:
        """Up to ``limit`` bytes (all buffered bytes if -1), waiting for some; b"" at the end."""
        with self._cond:
            while not self._chunks:
                if self._ended or self._aborted:
                    return b""
                if self._on_first_wait is not None:
                    callback, self._on_first_wait = self._on_first_wait, None
                    callback()
                self._cond.wait()
            chunks = self._chunks
            if limit < 0 or limit >= self._size:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                self._size = 0
            else:
                out = []
                need = limit
                while need > 0:
                    first = chunks[0]
                    if len(first) <= need:
                        out.append(first)
                        del chunks[0]
                        need -= len(first)
                    else:
                        out.append(first[:need])
                        chunks[0] = first[need:]
                        need = 0
                data = b"".join(out)
                self._size -= limit
            drained = self._size == 0
        if drained:
            on_drained = self._on_drained
            if on_drained is not None:
                on_drained()
        return data

    def release(self) -> None:
        """The app is done: drop the callbacks (bound to the request), so the request and
        its buffer are freed by reference counting rather than left as a cycle."""
        self._on_drained = self._on_first_wait = None

    def push_back(self, data: bytes) -> None:
        """Return bytes read past a line end (readline) to the front of the buffer."""
        if data:
            with self._cond:
                self._chunks.insert(0, data)
                self._size += len(data)


class InputStream:
    """``wsgi.input``: read(n), read(), readline(limit), readlines(hint), iteration.

    Reads past the end return b"". Bytes are pulled from the socket only as the app reads
    (backpressure to the client).
    """

    def __init__(self, buffer: BodyBuffer) -> None:
        self._buffer = buffer

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while True:
                data = self._buffer.take()
                if not data:
                    return b"".join(parts)
                parts.append(data)
        if size == 0:
            return b""
        parts = []
        wanted = size
        while wanted > 0:
            data = self._buffer.take(wanted)
            if not data:
                break
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def readline(self, limit: int | None = -1) -> bytes:
        if limit is None:
            limit = -1
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            data = self._buffer.take(-1 if limit < 0 else limit - got)
            if not data:
                break
            end = data.find(b"\n")
            if end >= 0:
                self._buffer.push_back(data[end + 1:])
                parts.append(data[:end + 1])
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class _EmptyInput:
    """``wsgi.input`` of a request without a body: every read is b"" (stateless, shared)."""

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, limit: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


EMPTY_INPUT = _EmptyInput()


class ErrorStream:
    """``wsgi.errors``: text written by the app goes to the ``betula.error`` logger, a line
    at a time."""

    def __init__(self) -> None:
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            error_logger.error("%s", line)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
        if pending:
            error_logger.error("%s", pending)
