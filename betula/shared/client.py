"""The worker's side of shared state and pub/sub: a backend with sync and async calls.

- ``LocalBackend``: a ``Hub`` in this process (a single-process server, or an app run
  outside Betula): direct calls.
- ``RedisBackend`` (``redis_backend.py``): Redis, with ``--redis-url``.
- ``SocketBackend``: the master's state server (``server.py``) over its Unix socket, found
  through ``BETULA_STATE_SOCKET``. Sync calls use one blocking connection per thread (one
  round trip each); async calls share one connection per event loop, pipelined (requests
  tagged with ids, answered in order), which also carries the pushed messages of the loop's
  subscriptions.

``Subscription`` is what ``betula.pubsub.subscribe`` returns, for both backends: an async
iterator of ``Message`` and, when messages were lost, ``Gap`` records.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import marshal
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from .hub import Hub, StateError, StateFull
from .server import SOCKET_ENV
from .wire import HEADER, decode_value, frame

__all__ = ["Backend", "Gap", "LocalBackend", "Message", "SocketBackend", "Subscription",
           "backend", "configure"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
REDIS_ENV = "BETULA_REDIS_URL"  # (also how an app run outside Betula reaches the Redis)
DEFAULT_QUEUE = 1000
_settings: dict[str, Any] = {"max_bytes": DEFAULT_MAX_BYTES, "queue": DEFAULT_QUEUE,
                             "redis_url": ""}


@dataclass(frozen=True)
class Message:
    """A published message: its topic, its data (the JSON value as published) and its
    sequence number within the topic (1, 2, ...)."""

    topic: str
    data: Any
    seq: int


@dataclass(frozen=True)
class Gap:
    """Messages of ``topic`` this subscriber will never see (``missed`` of them, or -1 when
    the count is unknown): its queue was full (a slow consumer) or the connection to the
    state server was lost. Resynchronise from the state (e.g. re-read a key) and go on."""

    topic: str
    missed: int


class Subscription:
    """An async iterator of ``Message`` and ``Gap``; ``async with`` (or ``aclose()``)
    unsubscribes. At most ``queue`` messages wait for the consumer; past that the newest
    are dropped and counted, and a ``Gap`` comes before the next message."""

    def __init__(self, backend: Backend, topics: list[str], patterns: list[str],
                 queue: int) -> None:
        self.backend = backend
        self.topics = topics
        self.patterns = patterns
        self.sid = 0
        self.closed = False
        self._limit = queue
        self._items: collections.deque[Message | Gap] = collections.deque()
        self._dropped: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the backend's side ---------------------------------------------------------------
    def deliver(self, topic: str, seq: int, data: bytes) -> None:
        """A message (on the subscription's loop thread)."""
        if self.closed:
            return
        last = self._last.get(topic)
        if last is not None and seq <= last:
            return  # delivered already (on Redis, a topic and a pattern of it both match)
        self._last[topic] = seq
        if last is not None and seq > last + 1:  # dropped upstream: the sequence jumped
            self._items.append(Gap(topic, seq - last - 1))
        if len(self._items) >= self._limit:
            self._dropped[topic] = self._dropped.get(topic, 0) + 1
        else:
            if self._dropped:
                self._flush_drops()
            self._items.append(Message(topic, data, seq))
        self._wake()

    def lost(self) -> None:
        """The connection that carried the messages is gone (messages were missed)."""
        for topic in {*self.topics, *self._last}:
            self._items.append(Gap(topic, -1))
        self._last.clear()
        self._wake()

    def _flush_drops(self) -> None:
        for topic, count in self._dropped.items():
            self._items.append(Gap(topic, count))
        self._dropped.clear()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the app's side -------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Messages (and Gap records) waiting for the app, plus those dropped since the last
        one it read: how far behind it is."""
        return len(self._items) + sum(self._dropped.values())

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message | Gap:
        while True:
            if self._items:
                item = self._items.popleft()
                if isinstance(item, Message):  # (the data is decoded as the app takes it)
                    return Message(item.topic, decode_value(item.data), item.seq)
                return item
            if self._dropped:
                self._flush_drops()
                continue
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()
            await self.backend.unsubscribe(self)


class Backend:
    """Sync calls (``call``) and async calls (``acall``) of the hub's operations, and
    subscriptions."""

    def call(self, op: str, *args: Any) -> Any:
        raise NotImplementedError

    async def acall(self, op: str, *args: Any) -> Any:
        raise NotImplementedError

    async def subscribe(self, topics: list[str], patterns: list[str]) -> Subscription:
        raise NotImplementedError

    async def unsubscribe(self, subscription: Subscription) -> None:
        raise NotImplementedError


class LocalBackend(Backend):
    """A hub in this process."""

    def __init__(self, hub: Hub, queue: int = DEFAULT_QUEUE) -> None:
        self.hub = hub
        self.queue = queue
        self._sids = itertools.count(1)

    def call(self, op: str, *args: Any) -> Any:
        return self.hub.call(op, args)

    async def acall(self, op: str, *args: Any) -> Any:
        return self.hub.call(op, args)

    async def subscribe(self, topics: list[str], patterns: list[str]) -> Subscription:
        subscription = Subscription(self, topics, patterns, self.queue)
        loop = asyncio.get_running_loop()
        owner = threading.get_ident()

        def deliver(topic: str, seq: int, data: bytes) -> None:
            if threading.get_ident() == owner:
                subscription.deliver(topic, seq, data)
            else:  # published from another thread (a WSGI app's)
                loop.call_soon_threadsafe(subscription.deliver, topic, seq, data)
        subscription.sid = next(self._sids)
        self.hub.subscribe(subscription.sid, deliver, topics, patterns)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        self.hub.unsubscribe(subscription.sid)


class _AsyncConnection(asyncio.Protocol):
    """One event loop's pipelined connection to the state server: answers resolve their
    call's future and pushed messages go to their subscription, as bytes arrive."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray()
        self.rids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.subscriptions: dict[int, Subscription] = {}
        # A subscribe call's Subscription, by its request id: registered under its sid as
        # soon as the answer is read, before the next message in the same read (a message
        # pushed for it right after the answer must not find no subscription).
        self.subscribing: dict[int, Subscription] = {}
        self.broken = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    async def call(self, op: str, args: tuple[Any, ...],
                   subscription: Subscription | None = None) -> Any:
        if self.broken:
            raise StateError("the state server connection is lost")
        rid = next(self.rids)
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        if subscription is not None:
            self.subscribing[rid] = subscription
        self.transport.write(frame((rid, op, *args)))
        return await future

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            size = HEADER.unpack_from(buf, pos)[0]
            if end - pos - 4 < size:
                break
            message = marshal.loads(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            if message[0] == 0:  # a pushed message: (0, sid, topic, seq, data)
                subscription = self.subscriptions.get(message[1])
                if subscription is not None:
                    subscription.deliver(message[2], message[3], message[4])
                continue
            future = self.pending.pop(message[0], None)
            subscription = self.subscribing.pop(message[0], None)
            if subscription is not None and message[1]:  # subscribed: (rid, True, sid)
                subscription.sid = message[2]
                self.subscriptions[message[2]] = subscription
            if future is not None and not future.done():
                future.set_result(message)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(StateError("the state server connection is lost"))
        self.pending.clear()
        for subscription in self.subscriptions.values():
            subscription.lost()


_ERRORS: dict[str, type[Exception]] = {"TypeError": TypeError, "ValueError": ValueError,
                                       "StateFull": StateFull}


def _result(answer: tuple[Any, ...]) -> Any:
    """An answer's result, or the server's error raised here: (rid, True, result) or
    (rid, False, error class name, message)."""
    if answer[1]:
        return answer[2]
    raise _ERRORS.get(answer[2], StateError)(answer[3])


class SocketBackend(Backend):
    """The master's state server."""

    def __init__(self, path: str, queue: int = DEFAULT_QUEUE) -> None:
        self.path = path
        self.queue = queue
        self._local = threading.local()
        self._conns: dict[asyncio.AbstractEventLoop, _AsyncConnection] = {}
        self._pid = os.getpid()

    # -- sync -----------------------------------------------------------------------------
    def _sock(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise StateError(f"cannot reach the state server at {self.path}: {exc}") \
                    from None
            self._local.sock = sock
            self._local.rid = 0
        return sock

    def call(self, op: str, *args: Any) -> Any:
        sock = self._sock()
        self._local.rid += 1
        try:
            sock.sendall(frame((self._local.rid, op, *args)))
            size = HEADER.unpack(_recv_exactly(sock, 4))[0]
            answer = marshal.loads(_recv_exactly(sock, size))
        except OSError as exc:
            sock.close()
            self._local.sock = None
            raise StateError(f"the state server connection is lost: {exc}") from None
        return _result(answer)

    # -- async ----------------------------------------------------------------------------
    async def _conn(self) -> _AsyncConnection:
        loop = asyncio.get_running_loop()
        conn = self._conns.get(loop)
        if conn is None or conn.broken:
            try:
                _, conn = await loop.create_unix_connection(_AsyncConnection, self.path)
            except OSError as exc:
                raise StateError(f"cannot reach the state server at {self.path}: {exc}") \
                    from None
            self._conns[loop] = conn
        return conn

    async def acall(self, op: str, *args: Any) -> Any:
        conn = await self._conn()
        return _result(await conn.call(op, args))

    async def subscribe(self, topics: list[str], patterns: list[str]) -> Subscription:
        conn = await self._conn()
        subscription = Subscription(self, topics, patterns, self.queue)
        # (registered by the connection as it reads the answer: see subscribing)
        _result(await conn.call("subscribe", (topics, patterns), subscription))
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        conn = self._conns.get(asyncio.get_running_loop())
        if conn is not None and not conn.broken:
            conn.subscriptions.pop(subscription.sid, None)
            try:
                _result(await conn.call("unsubscribe", (subscription.sid,)))
            except StateError:
                pass


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    parts = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("closed")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


_BACKEND: Backend | None = None
_BACKEND_PID = 0
_BACKEND_LOCK = threading.Lock()


def configure(max_bytes: int, queue: int, redis_url: str = "") -> None:
    """The process's settings (--state-max-bytes, --pubsub-queue, --redis-url), before any
    call."""
    global _BACKEND
    _settings["max_bytes"] = max_bytes
    _settings["queue"] = queue
    _settings["redis_url"] = redis_url
    _BACKEND = None


def backend() -> Backend:
    """This process's backend: the master's state server when there is one, else a hub of
    this process's own."""
    global _BACKEND, _BACKEND_PID
    current = _BACKEND
    if current is not None and _BACKEND_PID == os.getpid():
        return current
    with _BACKEND_LOCK:
        if _BACKEND is None or _BACKEND_PID != os.getpid():  # (a forked child starts anew)
            path = os.environ.get(SOCKET_ENV)
            queue = _settings["queue"]
            url = _settings["redis_url"] or os.environ.get(REDIS_ENV, "")
            if url:
                from .redis_backend import RedisBackend  # (redis-py only when asked for)
                _BACKEND = RedisBackend(url, queue)
            elif path:
                _BACKEND = SocketBackend(path, queue)
            else:
                _BACKEND = LocalBackend(Hub(_settings["max_bytes"]), queue)
            _BACKEND_PID = os.getpid()
        return _BACKEND
