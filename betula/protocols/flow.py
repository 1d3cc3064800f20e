"""Write-side flow control shared by the connection protocols.

A protocol sets ``write_paused`` (a plain attribute: read once per ``send()``, a
property would cost a call) from the transport's ``pause_writing`` /
``resume_writing`` and calls ``_wake_drain()`` when writing may go on (or the peer left);
senders wait in ``drain()`` or register a callback. The class using it provides ``loop``,
``_closed``, ``write_paused``, ``_drain_waiters`` and ``_drain_callbacks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["WRITE_HIGH_WATER", "WRITE_LOW_WATER", "WriteFlow"]

# Transport write buffer limits: senders wait (backpressure) above HIGH until below LOW.
WRITE_HIGH_WATER = 256 * 1024
WRITE_LOW_WATER = 64 * 1024


class WriteFlow:
    __slots__ = ()

    loop: asyncio.AbstractEventLoop
    _closed: bool
    write_paused: bool
    _drain_waiters: list[asyncio.Future[None]]
    _drain_callbacks: list[Callable[[], None]]

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (or the peer left)."""
        if not self.write_paused or self._closed:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def add_drain_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transport drains (or at once if it is not paused)."""
        if not self.write_paused or self._closed:
            callback()
        else:
            self._drain_callbacks.append(callback)

    def _wake_drain(self) -> None:
        callbacks, self._drain_callbacks = self._drain_callbacks, []
        for callback in callbacks:
            callback()
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
