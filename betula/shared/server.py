"""The state server: a ``Hub`` served over a Unix socket, from the master process.

``StateServer.start()`` (the master, before it forks the workers) creates a private
directory with the socket and runs an asyncio loop in a thread of the master; the workers
connect to it (``client.py``'s ``SocketBackend``, through ``BETULA_STATE_SOCKET``). The
data lives in the master, so a worker that crashes or is replaced by a HUP rolling restart
loses nothing a call already returned from.

Each connection is one worker's: requests are answered in order; a subscription pushes
its messages on the same connection. A worker that stops reading would grow our buffer:
past ``PUSH_HIGH`` bytes waiting, messages for that connection are dropped (the worker
sees the jump in the topic's sequence numbers and tells its subscribers).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import marshal
import os
import shutil
import tempfile
import threading
from typing import Any

from .hub import Hub, StateError
from .wire import HEADER, MAX_FRAME, frame

__all__ = ["StateServer", "SOCKET_ENV"]

logger = logging.getLogger("betula.error")

SOCKET_ENV = "BETULA_STATE_SOCKET"  # where the workers find the server
PUSH_HIGH = 8 * 1024 * 1024  # pushed bytes a worker may leave unread before drops
SWEEP_INTERVAL = 1.0
_sids = itertools.count(1)


class _Connection(asyncio.Protocol):
    """One worker's connection: frames parsed as they arrive (no task per connection, no
    await per frame: a request is answered within the read that completes it)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: Any = None
        self.buf = bytearray()
        self.sids: list[int] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        out = []
        end = len(buf)
        while end - pos >= 4:
            size = HEADER.unpack_from(buf, pos)[0]
            if size > MAX_FRAME:
                self.transport.close()
                return
            if end - pos - 4 < size:
                break
            request = marshal.loads(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            rid, op, args = request[0], request[1], request[2:]
            try:
                answer = (rid, True, self._call(self.hub, op, args))
            except (StateError, ValueError, TypeError) as exc:
                answer = (rid, False, type(exc).__name__, str(exc))
            out.append(frame(answer))
        if pos:
            del buf[:pos]
        if out:
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        for sid in self.sids:
            self.hub.unsubscribe(sid)
        self.sids.clear()

    def _call(self, hub: Hub, op: str, args: tuple[Any, ...]) -> Any:
        if op == "subscribe":  # (topics, patterns) -> the subscription's id
            sid = next(_sids)
            self.sids.append(sid)
            hub.subscribe(sid, self._pusher(sid), list(args[0]), list(args[1]))
            return sid
        if op == "unsubscribe":
            hub.unsubscribe(args[0])
            return None
        return hub.call(op, args)

    def _pusher(self, sid: int) -> Any:
        def push(topic: str, seq: int, data: bytes) -> None:
            transport = self.transport
            if transport.is_closing() or transport.get_write_buffer_size() > PUSH_HIGH:
                return  # dropped: the worker sees the sequence jump
            transport.write(frame((0, sid, topic, seq, data)))
        return push


class StateServer:
    """The master's state server (start once, before forking; stop at exit)."""

    def __init__(self, max_bytes: int) -> None:
        self.hub = Hub(max_bytes)
        self.directory = ""
        self.path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> str:
        """Listen and serve in a thread; returns the socket's path (also set in the
        environment the workers inherit)."""
        self.directory = tempfile.mkdtemp(prefix="betula-state-")
        os.chmod(self.directory, 0o700)
        self.path = os.path.join(self.directory, "state.sock")
        self._thread = threading.Thread(target=self._run, name="betula-state", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        os.environ[SOCKET_ENV] = self.path
        return self.path

    def _run(self) -> None:
        try:
            import uvloop
            loop = self._loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
            loop = self._loop = asyncio.new_event_loop()

        async def main() -> None:
            server = await loop.create_unix_server(lambda: _Connection(self.hub), self.path)
            self._ready.set()
            async with server:
                while True:
                    await asyncio.sleep(SWEEP_INTERVAL)
                    self.hub.sweep()

        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            def cancel() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()
            loop.call_soon_threadsafe(cancel)
            if self._thread is not None:
                self._thread.join(5)
        os.environ.pop(SOCKET_ENV, None)
        shutil.rmtree(self.directory, ignore_errors=True)
