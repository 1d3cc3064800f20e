"""Shared state and pub/sub on Redis (``--redis-url``): the same calls and the same
semantics as the embedded hub, for workers on many machines.

- State: key ``K`` is ``betula:s:K`` holding the same JSON bytes; a TTL is Redis's
  (``SET ... PX``), so it expires for every machine at once; ``incr`` is ``INCRBY`` (a missing
  key starts at 0, a counter keeps its TTL, a value that is not an integer is refused);
  ``set_multi`` is one ``MULTI``; ``keys``/``clear`` scan Betula's namespace only. Memory is
  bounded by Redis's own ``maxmemory`` (with ``noeviction``, a write past it is
  ``StateFull``, as with ``--state-max-bytes``).
- Pub/sub: topic ``T`` is channel ``betula:t:T``; a Lua script takes the topic's next
  sequence number (``INCR betula:seq:T``) and publishes ``seq`` and the data together, so
  the numbers are one sequence for every machine. Each subscription has its own Redis
  connection, so ``publish`` counts subscriptions, as the hub does. When that connection
  drops, the subscription gets a ``Gap`` (messages may have been missed), reconnects with
  backoff and subscribes again; the log says so, and ``RedisBackend.reconnects`` counts it.

Client: redis-py (``redis.asyncio`` for the async calls, one pool per event loop; hiredis
parses replies when installed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from .client import Backend, Subscription
from .hub import StateError, StateFull

__all__ = ["RedisBackend", "check_redis"]

logger = logging.getLogger("betula.error")

STATE = "betula:s:"
TOPIC = "betula:t:"
SEQ = "betula:seq:"
# KEYS[1] the topic's sequence key, KEYS[2] its channel; ARGV[1] the data.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
return redis.call('PUBLISH', KEYS[2], seq .. ' ' .. ARGV[1])
"""
# The operations that are one Redis command each (RedisBackend._command).
_SINGLE = frozenset({"get", "set", "delete", "incr", "get_multi", "publish"})
RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
ASYNC_CONNECTIONS = 32  # Redis connections one event loop's calls may use at once


def check_redis(url: str) -> str | None:
    """None when Redis answers at ``url``, else one line saying why not (startup)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (RedisError, OSError, ValueError) as exc:
        return f"cannot reach Redis at {url}: {exc}"
    return None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _error(exc: Exception) -> Exception:
    text = str(exc)
    if isinstance(exc, ResponseError):
        if isinstance(exc, OutOfMemoryError) or "maxmemory" in text:
            return StateFull(f"shared state is full (Redis maxmemory): {text}")
        if "not an integer" in text:
            return StateError("incr: the value is not an integer")
        return StateError(f"Redis refused: {text}")
    return StateError(f"Redis unreachable: {text}")


class RedisBackend(Backend):
    """State and pub/sub on the Redis at ``url``."""

    def __init__(self, url: str, queue: int) -> None:
        self.url = url
        self.queue = queue
        self.reconnects = 0
        self._sync = redis.Redis.from_url(url)
        self._sync.betula_publish = self._sync.register_script(_PUBLISH)
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()
        self._readers: dict[Subscription, asyncio.Task[None]] = {}

    # -- the operations ---------------------------------------------------------------------
    def call(self, op: str, *args: Any) -> Any:
        try:
            return self._run_sync(op, args)
        except RedisError as exc:
            raise _error(exc) from None

    async def acall(self, op: str, *args: Any) -> Any:
        try:
            return await self._run_async(op, args)
        except RedisError as exc:
            raise _error(exc) from None

    @staticmethod
    def _command(r: Any, op: str, args: tuple[Any, ...]) -> Any:
        """The one Redis command of a single-command ``op``, sent on ``r``: its reply from
        the sync client, an awaitable from the async one (the two share the method names);
        None for the ops that take several steps (``_run_sync`` / ``_run_async`` do those)."""
        if op == "get":
            return r.get(STATE + args[0])
        if op == "set":
            key, value, ttl = args
            if ttl is None:
                return r.set(STATE + key, value)
            return r.set(STATE + key, value, px=max(1, int(ttl * 1000)))
        if op == "delete":
            return r.delete(STATE + args[0])
        if op == "incr":
            return r.incrby(STATE + args[0], args[1])
        if op == "get_multi":
            return r.mget([STATE + k for k in args[0]])
        if op == "publish":
            return r.betula_publish(keys=[SEQ + args[0], TOPIC + args[0]], args=[args[1]])
        return None

    @staticmethod
    def _scan(prefix: str) -> str:
        return STATE + _glob_escape(prefix) + "*"

    def _run_sync(self, op: str, args: tuple[Any, ...]) -> Any:
        r = self._sync
        if op == "get_multi" and not args[0]:
            return []
        if op in _SINGLE:
            reply = self._command(r, op, args)
            return bool(reply) if op == "delete" else reply
        if op == "set_multi":
            pipe = r.pipeline(transaction=True)
            for key, value in args[0]:
                self._command(pipe, "set", (key, value, args[1]))
            pipe.execute()
            return None
        if op == "keys":
            return sorted(k.decode()[len(STATE):] for k in
                          r.scan_iter(match=self._scan(args[0]), count=500))
        if op == "clear":
            batch = list(r.scan_iter(match=self._scan(""), count=500))
            if batch:
                r.delete(*batch)
            return None
        raise ValueError(f"unknown operation {op!r}")

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            # A blocking pool: a burst of concurrent calls waits for a connection instead of
            # failing with "Too many connections".
            pool = aredis.BlockingConnectionPool.from_url(
                self.url, max_connections=ASYNC_CONNECTIONS, timeout=None)
            client = self._async[loop] = aredis.Redis(connection_pool=pool)
            client.betula_publish = client.register_script(_PUBLISH)
        return client

    async def _run_async(self, op: str, args: tuple[Any, ...]) -> Any:
        r = self._aclient()
        if op == "get_multi" and not args[0]:
            return []
        if op in _SINGLE:
            reply = await self._command(r, op, args)
            return bool(reply) if op == "delete" else reply
        if op == "set_multi":
            async with r.pipeline(transaction=True) as pipe:
                for key, value in args[0]:
                    self._command(pipe, "set", (key, value, args[1]))
                await pipe.execute()
            return None
        if op == "keys":
            return sorted([k.decode()[len(STATE):] async for k in
                           r.scan_iter(match=self._scan(args[0]), count=500)])
        if op == "clear":
            batch = [k async for k in r.scan_iter(match=self._scan(""), count=500)]
            if batch:
                await r.delete(*batch)
            return None
        raise ValueError(f"unknown operation {op!r}")

    # -- pub/sub ------------------------------------------------------------------------------
    async def subscribe(self, topics: list[str], patterns: list[str]) -> Subscription:
        subscription = Subscription(self, topics, patterns, self.queue)
        client = aredis.Redis.from_url(self.url)
        pubsub = client.pubsub()
        try:
            await self._listen_on(pubsub, topics, patterns)
        except RedisError as exc:
            await client.aclose()
            raise _error(exc) from None
        self._readers[subscription] = asyncio.get_running_loop().create_task(
            self._read(subscription, client, pubsub))
        return subscription

    @staticmethod
    async def _listen_on(pubsub: Any, topics: list[str], patterns: list[str]) -> None:
        if topics:
            await pubsub.subscribe(*(TOPIC + t for t in topics))
        if patterns:
            await pubsub.psubscribe(*(TOPIC + p for p in patterns))

    async def _read(self, subscription: Subscription, client: Any, pubsub: Any) -> None:
        attempt = 0
        try:
            while not subscription.closed:
                try:
                    async for message in pubsub.listen():
                        attempt = 0
                        kind = message["type"]
                        if kind != "message" and kind != "pmessage":
                            continue
                        topic = message["channel"].decode()[len(TOPIC):]
                        seq, _, data = message["data"].partition(b" ")
                        subscription.deliver(topic, int(seq), data)
                except (RedisConnectionError, OSError) as exc:
                    if subscription.closed:
                        return
                    self.reconnects += 1
                    logger.warning("pub/sub: lost Redis (%s): subscribers told they may "
                                   "have missed messages; reconnecting", exc)
                    subscription.lost()
                    await asyncio.sleep(RECONNECT_DELAYS[min(attempt,
                                                             len(RECONNECT_DELAYS) - 1)])
                    attempt += 1
                    try:
                        await pubsub.aclose()
                        pubsub = client.pubsub()
                        await self._listen_on(pubsub, subscription.topics,
                                              subscription.patterns)
                    except (RedisError, OSError):
                        continue
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except (RedisError, OSError):
                pass

    async def unsubscribe(self, subscription: Subscription) -> None:
        task = self._readers.pop(subscription, None)
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, RedisError, OSError):
                pass
