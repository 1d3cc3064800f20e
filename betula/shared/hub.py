"""The shared state and pub/sub hub: one ``Hub`` holds the data for every worker of a
master (``server.py`` serves it over a Unix socket from the master) or for a single-process
server (``client.py``'s ``LocalBackend`` calls it directly). The semantics live here once.

Keys are str; values are the serializer's bytes (``wire.encode_value``: JSON), stored as
given. ``incr`` reads and writes a JSON integer (a missing key starts at 0). A key with a
TTL expires at its deadline: it is gone for every read from then on (checked on access) and
its memory is freed by ``sweep()`` (the server runs it every second). Memory is bounded:
keys and values count against ``max_bytes`` (``--state-max-bytes``); a write past it is
refused with ``StateFull``, nothing is evicted behind the app's back.

Pub/sub: ``publish(topic, data)`` gives the message the topic's next sequence number
(1, 2, ...: a subscriber that sees a jump knows what it missed) and hands it to every
subscriber of the topic and of every matching pattern (``fnmatch`` globs: ``chat.*``);
it returns how many subscribers it reached.
"""

from __future__ import annotations

import fnmatch
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["OPS", "Hub", "StateError", "StateFull", "Subscriber"]

# The operations a call may name (subscriptions have their own calls).
OPS = frozenset({"get", "set", "delete", "incr", "get_multi", "set_multi", "keys", "clear",
                 "publish", "stats"})
# A subscriber: called with (topic, seq, data) for each message (it must not block).
Subscriber = Callable[[str, int, bytes], None]


class StateError(Exception):
    """A shared-state operation the hub refuses (its message says why)."""


class StateFull(StateError):
    """A write would take the shared state past --state-max-bytes."""


class Hub:
    """The data and the subscriptions. Thread-safe (one lock): the local backend is called
    from the event loop and from WSGI threads alike."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0  # bytes of keys and values held
        self._data: dict[str, bytes] = {}
        self._deadlines: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # (deadline, key) heap, pruned lazily
        self._seq: dict[str, int] = {}
        self._topics: dict[str, dict[int, Subscriber]] = {}
        self._patterns: dict[str, dict[int, Subscriber]] = {}
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------
    def _live(self, key: str, now: float) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            deadline = self._deadlines.get(key)
            if deadline is not None and deadline <= now:
                self._drop(key)
                return None
        return value

    def _drop(self, key: str) -> None:
        value = self._data.pop(key, None)
        if value is not None:
            self.used -= len(key) + len(value)
        self._deadlines.pop(key, None)

    def _growth(self, key: str, value: bytes) -> int:
        """Bytes storing ``value`` under ``key`` adds (negative when it replaces more)."""
        old = self._data.get(key)
        return len(value) - len(old) if old is not None else len(key) + len(value)

    def _put(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        size = self._growth(key, value)
        if self.used + size > self.max_bytes:
            raise StateFull(f"shared state is full: {self.used} of {self.max_bytes} bytes "
                            "used (--state-max-bytes)")
        self._data[key] = value
        self.used += size
        if ttl is None:
            self._deadlines.pop(key, None)
        else:
            deadline = now + ttl
            self._deadlines[key] = deadline
            heapq.heappush(self._expiry, (deadline, key))

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key, time.monotonic())

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._lock:
            self._put(key, value, ttl, time.monotonic())

    def delete(self, key: str) -> bool:
        with self._lock:
            present = self._live(key, time.monotonic()) is not None
            self._drop(key)
            return present

    def incr(self, key: str, delta: int) -> int:
        with self._lock:
            now = time.monotonic()
            value = self._live(key, now)
            if value is None:
                number = 0
            else:
                try:
                    number = int(value)
                except ValueError:
                    raise StateError(f"incr: the value of {key!r} is not an integer") from None
            number += delta
            deadline = self._deadlines.get(key)  # a counter keeps its TTL
            self._put(key, str(number).encode(), None if deadline is None else
                      deadline - now, now)
            return number

    def get_multi(self, keys: list[str]) -> list[bytes | None]:
        with self._lock:
            now = time.monotonic()
            return [self._live(key, now) for key in keys]

    def set_multi(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            growth = sum(self._growth(k, v) for k, v in items)
            if self.used + growth > self.max_bytes:  # all or nothing
                raise StateFull(f"shared state is full: {self.used} of {self.max_bytes} "
                                "bytes used (--state-max-bytes)")
            for key, value in items:
                self._put(key, value, ttl, now)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            now = time.monotonic()
            return sorted(k for k in list(self._data)
                          if k.startswith(prefix) and self._live(k, now) is not None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._deadlines.clear()
            self._expiry.clear()
            self.used = 0

    def sweep(self) -> int:
        """Free the keys whose TTL has passed; returns how many."""
        freed = 0
        with self._lock:
            now = time.monotonic()
            heap = self._expiry
            while heap and heap[0][0] <= now:
                deadline, key = heapq.heappop(heap)
                if self._deadlines.get(key) == deadline:  # (not re-set since)
                    self._drop(key)
                    freed += 1
        return freed

    # -- pub/sub ------------------------------------------------------------------------------
    def subscribe(self, sid: int, subscriber: Subscriber, topics: list[str],
                  patterns: list[str]) -> None:
        with self._lock:
            for topic in topics:
                self._topics.setdefault(topic, {})[sid] = subscriber
            for pattern in patterns:
                self._patterns.setdefault(pattern, {})[sid] = subscriber

    def unsubscribe(self, sid: int) -> None:
        with self._lock:
            for table in (self._topics, self._patterns):
                for name in [n for n, subs in table.items() if subs.pop(sid, None) is not None
                             and not subs]:
                    del table[name]

    def publish(self, topic: str, data: bytes) -> int:
        with self._lock:
            seq = self._seq[topic] = self._seq.get(topic, 0) + 1
            # One delivery per subscription, whether a topic or a pattern (or both) matched.
            targets = dict(self._topics.get(topic, ()))
            for pattern, subs in self._patterns.items():
                if fnmatch.fnmatchcase(topic, pattern):
                    targets.update(subs)
        for subscriber in targets.values():
            subscriber(topic, seq, data)
        return len(targets)

    def call(self, op: str, args: tuple[Any, ...]) -> Any:
        """One of ``OPS`` by name (what a backend or the state server was asked)."""
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}")
        return getattr(self, op)(*args)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": len(self._data), "bytes": self.used, "max_bytes": self.max_bytes,
                    "topics": len(self._topics), "patterns": len(self._patterns)}
