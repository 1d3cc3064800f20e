"""Pub/sub for apps: topics shared by every worker of a Betula master (and a single-process
server).

    from betula import pubsub

    reached = await pubsub.apublish("chat.lobby", {"user": "ada", "text": "hi"})
    async with pubsub.subscribe("chat.lobby", patterns=["news.*"]) as messages:
        async for item in messages:
            if isinstance(item, pubsub.Gap):   # messages were lost: resync from the state
                ...
            else:
                item.topic, item.data, item.seq

Messages are JSON values (another type is a ``TypeError``), at most ``MAX_MESSAGE`` bytes
encoded. Every message carries its topic's sequence number (1, 2, ...). A subscriber is
never silently deaf: when its queue (``--pubsub-queue`` messages) is full or its connection
to the master is lost, the messages it cannot have are replaced by a ``Gap`` record saying
which topic and how many (-1: unknown), before the next message. ``publish`` returns how
many subscriptions the message reached (their queues; not whether their apps read it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .shared.client import Gap, Message, Subscription, backend
from .shared.wire import encode_value

__all__ = ["Gap", "MAX_MESSAGE", "Message", "Subscription", "apublish", "publish",
           "subscribe"]

MAX_MESSAGE = 1024 * 1024  # bytes of one encoded message


def _message(topic: Any, message: Any) -> tuple[str, bytes]:
    if not isinstance(topic, str) or not topic:
        raise TypeError(f"a topic is a non-empty str, got {topic!r}")
    data = encode_value(message)
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes over the pub/sub limit of "
                         f"{MAX_MESSAGE} bytes")
    return topic, data


def publish(topic: str, message: Any) -> int:
    """Send ``message`` to every subscriber of ``topic`` (and of matching patterns)."""
    return int(backend().call("publish", *_message(topic, message)))


async def apublish(topic: str, message: Any) -> int:
    return int(await backend().acall("publish", *_message(topic, message)))


class _Opening:
    """``subscribe(...)``: awaitable, ``async with``-able and ``async for``-able at once,
    so every spelling subscribes before the first message is awaited."""

    def __init__(self, topics: list[str], patterns: list[str]) -> None:
        self.topics = topics
        self.patterns = patterns
        self.subscription: Subscription | None = None

    async def _open(self) -> Subscription:
        if self.subscription is None:
            self.subscription = await backend().subscribe(self.topics, self.patterns)
        return self.subscription

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> Subscription:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        if self.subscription is not None:
            await self.subscription.aclose()

    def __aiter__(self) -> _Opening:
        return self

    async def __anext__(self) -> Message | Gap:
        subscription = await self._open()
        return await subscription.__anext__()


def subscribe(*topics: str, patterns: Iterable[str] = ()) -> _Opening:
    """Subscribe to ``topics`` and glob ``patterns`` (``chat.*``): ``async with
    subscribe(...) as messages`` (unsubscribes on exit), or ``messages = await
    subscribe(...)`` then ``await messages.aclose()``."""
    names = list(topics)
    globs = list(patterns)
    for name in [*names, *globs]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a topic or pattern is a non-empty str, got {name!r}")
    if not names and not globs:
        raise TypeError("subscribe() needs at least one topic or pattern")
    return _Opening(names, globs)
