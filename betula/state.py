"""Shared state for apps: one key-value store for every worker of a Betula master (and for
a single-process server), with TTLs and atomic counters.

    from betula import state

    state.set("greeting", {"text": "hello"}, ttl=60)
    state.get("greeting")            # {'text': 'hello'}; a missing key: None (or default)
    state.incr("views")              # atomic across workers; a missing key starts at 0
    await state.aincr("views")       # the same on the event loop, without blocking it

Values are JSON (numbers, strings, booleans, None, lists, dicts); another type is a
``TypeError`` naming it. Under ``--workers N`` the data lives in the master (a worker that
crashes or is restarted by HUP loses nothing a call returned from); a single-process server
keeps it in its own process. ``--state-max-bytes`` bounds it: a write past it raises
``StateFull`` (nothing is evicted).

Each sync call is one round trip to the master (tens of microseconds on a Unix socket): fine
in WSGI code and in short handlers; async code should await the ``a``-prefixed twins (the
naming Django's async ORM uses: ``aget``, ``aset``...), which never block the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .shared.client import backend
from .shared.hub import StateError, StateFull
from .shared.wire import decode_value, encode_value

__all__ = [
    "StateError", "StateFull", "adecr", "adelete", "aget", "aget_multi", "aincr", "akeys",
    "aclear", "aset", "aset_multi", "clear", "decr", "delete", "get", "get_multi", "incr",
    "keys", "set", "set_multi",
]


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"state keys are str, got {type(key).__name__}")
    return key


def _ttl(ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


def _delta(delta: Any) -> int:
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"incr/decr take an int delta, got {type(delta).__name__}")
    return delta


# -- sync ----------------------------------------------------------------------------------
def get(key: str, default: Any = None) -> Any:
    """The value of ``key``, or ``default`` when it is missing (or expired)."""
    data = backend().call("get", _key(key))
    return default if data is None else decode_value(data)


def set(key: str, value: Any, ttl: float | None = None) -> None:  # noqa: A001 - the API's name
    """Store ``value`` under ``key``; ``ttl`` seconds later it is gone."""
    backend().call("set", _key(key), encode_value(value), _ttl(ttl))


def delete(key: str) -> bool:
    """Remove ``key``; True when it was there."""
    return bool(backend().call("delete", _key(key)))


def incr(key: str, delta: int = 1) -> int:
    """Add ``delta`` atomically (a missing key starts at 0); returns the new value."""
    return int(backend().call("incr", _key(key), _delta(delta)))


def decr(key: str, delta: int = 1) -> int:
    """Subtract ``delta`` atomically (a missing key starts at 0); returns the new value."""
    return int(backend().call("incr", _key(key), -_delta(delta)))


def get_multi(keys: Iterable[str]) -> dict[str, Any]:
    """``{key: value}`` for every key asked (None for the missing ones)."""
    names = [_key(k) for k in keys]
    values = backend().call("get_multi", names)
    return {k: decode_value(v) for k, v in zip(names, values, strict=True)}


def set_multi(mapping: Mapping[str, Any], ttl: float | None = None) -> None:
    """Store every item (all or none: a write past --state-max-bytes stores nothing)."""
    items = [(_key(k), encode_value(v)) for k, v in mapping.items()]
    backend().call("set_multi", items, _ttl(ttl))


def keys(prefix: str = "") -> list[str]:
    """The keys starting with ``prefix``, sorted."""
    return list(backend().call("keys", prefix))


def clear() -> None:
    """Remove every key."""
    backend().call("clear")


# -- async ---------------------------------------------------------------------------------
async def aget(key: str, default: Any = None) -> Any:
    data = await backend().acall("get", _key(key))
    return default if data is None else decode_value(data)


async def aset(key: str, value: Any, ttl: float | None = None) -> None:
    await backend().acall("set", _key(key), encode_value(value), _ttl(ttl))


async def adelete(key: str) -> bool:
    return bool(await backend().acall("delete", _key(key)))


async def aincr(key: str, delta: int = 1) -> int:
    return int(await backend().acall("incr", _key(key), _delta(delta)))


async def adecr(key: str, delta: int = 1) -> int:
    return int(await backend().acall("incr", _key(key), -_delta(delta)))


async def aget_multi(keys: Iterable[str]) -> dict[str, Any]:
    names = [_key(k) for k in keys]
    values = await backend().acall("get_multi", names)
    return {k: decode_value(v) for k, v in zip(names, values, strict=True)}


async def aset_multi(mapping: Mapping[str, Any], ttl: float | None = None) -> None:
    items = [(_key(k), encode_value(v)) for k, v in mapping.items()]
    await backend().acall("set_multi", items, _ttl(ttl))


async def akeys(prefix: str = "") -> list[str]:
    return list(await backend().acall("keys", prefix))


async def aclear() -> None:
    await backend().acall("clear")
