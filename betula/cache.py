"""One bounded cache for every per-request memo of the server (status lines, header pairs,
request targets, analysed heads, replayed heads...), with one policy when it is full.

A ``BoundedCache`` keeps a dict (a hit is ``cache.entries.get(key)``: one C call, nothing
else) in two generations. New entries go into the current one; when it holds ``limit`` entries
it becomes the previous generation and a new, empty one starts. A miss asks the previous
generation (``recall``), which moves a hit back into the current one. So an entry used at
least once per generation stays forever, an entry not used for a whole generation is
dropped, and the cache never holds more than ``2 * limit`` entries: endless distinct keys
(new paths, cookies, ids) cost bounded memory and never push out the keys in constant use,
where emptying a full cache whole (the old policy) dropped the hot keys with the cold.

Where keys may never repeat (heads with a new cookie or id, targets with a new query), a key
is kept only the second time it is missed: ``admit`` remembers the hash of a key missed
once (a set of at most ``limit`` ints, emptied when full; a key that comes back before that
is admitted). Traffic whose keys never repeat then stores nothing, rotates nothing and
frees nothing; a key in use is cached from its second request on. (Measured on
browser-like requests whose heads never repeat, bench/micro.py --unique: storing every
head, target and replay cost about 6 us a request in stores, rotations and frees.)

A miss costs no Python call where the key churns per request (cookies, ids, heads): call
sites guard ``recall`` with ``key in cache.previous`` and add with the same two steps as
``keep``, inline (``if len(entries) >= cache.limit: cache.rotate()``, then store). Measured
on browser-like requests whose heads never repeat, each call on the miss path costs about
400 instructions (callgrind).
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A dict of at most ``limit`` entries (``entries``, the current generation), and the
    generation before it. ``entries`` is an exact dict that is never replaced (a new
    generation empties it after copying it), so a hit is ``cache.entries.get(key)``: a
    dict subclass would cost every hit its own call (CPython specialises calls of dict
    methods on exact dicts only: about 200 instructions a lookup, callgrind)."""

    __slots__ = ("entries", "limit", "previous", "rotations", "seen")

    def __init__(self, limit: int) -> None:
        self.entries: dict[K, V] = {}
        self.limit = limit
        self.previous: dict[K, V] = {}
        self.rotations = 0  # how many generations have ended (for logs and tests)
        self.seen: set[int] = set()  # hashes of keys missed once (admit)

    def __len__(self) -> int:
        return len(self.entries)

    def keep(self, key: K, value: V) -> V:
        """Add ``key`` (after a miss) and return ``value``; a full generation ends first."""
        entries = self.entries
        if len(entries) >= self.limit:
            self.rotate()
        entries[key] = value
        return value

    def rotate(self) -> None:
        """End the current generation: it becomes the previous one (``entries`` stays the
        same dict object, emptied)."""
        self.previous = self.entries.copy()
        self.entries.clear()
        self.rotations += 1

    def admit(self, key: K) -> bool:
        """After a miss in both generations: whether ``key`` should be kept now. False the
        first time (its hash is remembered), True when it is missed again, so keys that
        never repeat are never stored. The set of hashes is emptied when it holds ``limit``
        (it holds no value: a key it forgets is admitted one request later)."""
        seen = self.seen
        digest = hash(key)
        if digest in seen:
            seen.discard(digest)
            return True
        if len(seen) >= self.limit:
            seen.clear()
        seen.add(digest)
        return False

    def recall(self, key: K) -> V | None:
        """After a miss in the current generation: the previous generation's entry for
        ``key``, moved back into the current one (None when it is not there either)."""
        value = self.previous.pop(key, None)
        if value is not None:
            self.keep(key, value)
        return value

    def lookup(self, key: K) -> V | None:
        """``entries.get`` then ``recall``, where one more call costs nothing."""
        value = self.entries.get(key)
        return self.recall(key) if value is None else value

    def reset(self) -> None:
        """Forget everything (both generations)."""
        self.entries.clear()
        self.previous = {}
        self.seen.clear()
