"""Hornbeam's ``hornbeam_erlang`` module, shipped by Betula: the shared-state and pub/sub
calls of Hornbeam's apps (its ETS and ``pg`` on the Erlang side), on ``betula.state`` and
``betula.pubsub`` here, with Hornbeam's semantics: a missing key is None, ``state_incr``
and ``state_decr`` start from 0, ``state_get_multi`` returns a dict with None for the
missing keys. So an app written for Hornbeam (``from hornbeam_erlang import state_incr``)
runs under Betula unchanged, with its counters exact across ``--workers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from betula import pubsub as _pubsub
from betula import state as _state

__all__ = ["publish", "state_decr", "state_delete", "state_get", "state_get_multi",
           "state_incr", "state_keys", "state_set"]


def state_get(key: str) -> Any:
    return _state.get(key)


def state_set(key: str, value: Any) -> None:
    _state.set(key, value)


def state_incr(key: str, delta: int = 1) -> int:
    return _state.incr(key, delta)


def state_decr(key: str, delta: int = 1) -> int:
    return _state.decr(key, delta)


def state_delete(key: str) -> None:
    _state.delete(key)


def state_get_multi(keys: Iterable[str]) -> dict[str, Any]:
    return _state.get_multi(keys)


def state_keys(prefix: str = "") -> list[str]:
    return _state.keys(prefix)


def publish(topic: str, message: Any) -> int:
    return _pubsub.publish(topic, message)
