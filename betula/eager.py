"""Run a coroutine to its end from synchronous code, for the cost of a call when it never
really suspends: what the embedding API's ``run_asgi`` does once a request.

``loop.run_until_complete`` costs ~73k instructions (about 16 us here) even for a
coroutine that never suspends, with asyncio's loop and uvloop alike (callgrind, 3.11): the
Task's first step waits for the next loop turn, and run_forever sets up and tears down
(asyncgen hooks, the running-loop bookkeeping) around two turns of the loop, each polling
the selector. ``EagerLoop.run`` creates the Task as usual, so ``asyncio.current_task()``
is a real Task of this loop inside the app (anyio and Starlette need one), but takes the
Task's first step at once, with the loop set as the running loop. A coroutine that
finishes in that step (most requests: the app computes and answers) is done; one that
suspends (a future not yet done: I/O, a timer, a thread), or that scheduled callbacks of
its own, goes on in ``run_until_complete``, where its Task has already asked for its next
step in the usual way.

Work the app left behind (a background task, a timer, a socket it waits on) still moves:
after an eager call the loop takes one turn when it has callbacks or timers pending, or
when it has not turned for ``TURN_EVERY`` seconds and its selector watches a file besides
its own self-pipe (a task waiting only on a socket), so nothing waits for long while calls
keep finishing eagerly. (Work from another thread or a signal handler arrives as a callback
due, which turns the loop at the next call.) During the eager step
``loop.is_running()`` is True, as inside ``run_until_complete``.

The eager step runs without the loop's asyncgen hooks: an async generator that an app
leaves unfinished within that step is finalized by the garbage collector, not by the
loop's ``shutdown_asyncgens``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["EagerLoop", "LoopRunning"]

T = TypeVar("T")

# Bound once (a module global is one lookup; asyncio.X is two, in every call).
_get_running_loop = asyncio._get_running_loop
_set_running_loop = asyncio._set_running_loop
_get_ident = threading.get_ident
_monotonic = time.monotonic
_Task = asyncio.Task

# After eager calls, the loop turns at least this often (seconds) for work in the
# background that only the selector knows of.
TURN_EVERY = 0.001


class LoopRunning(RuntimeError):
    """``EagerLoop.run`` called where an event loop is already running (the coroutine
    given is closed, never started)."""


class EagerLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``run`` takes a coroutine's first step eagerly."""

    _eager_capture: list[tuple[Callable[..., Any], tuple[Any, ...], Any]] | None = None
    _eager_step = False  # the first step is running
    _eager_scheduled = False  # ...and it scheduled a callback: the loop must turn
    _last_turn = 0.0  # time.monotonic() of the loop's last turn

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: Any = None) -> Any:
        capture = self._eager_capture
        if capture is not None:  # the new Task's first step: taken by run(), not queued
            self._eager_capture = None
            capture.append((callback, args, context))
            return None
        if self._eager_step:
            self._eager_scheduled = True
        return super().call_soon(callback, *args, context=context)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``run_until_complete(coro)``, with the Task's first step taken at once."""
        if _get_running_loop() is not None:
            coro.close()  # (never awaited: no warning for it)
            raise LoopRunning("EagerLoop.run() called from a running event loop")
        captured: list[tuple[Callable[..., Any], tuple[Any, ...], Any]] = []
        self._eager_capture = captured
        try:
            task = _Task(coro, loop=self, name="betula-embedded")
        finally:
            self._eager_capture = None
        if not captured:  # pragma: no cover - a Task that did not ask for its step
            return self.run_until_complete(task)
        step, args, context = captured[0]
        self._eager_step = True
        self._eager_scheduled = False
        _set_running_loop(self)
        # is_running() is True while the step runs, as in run_forever (which sets the same
        # attribute of BaseEventLoop's).
        self._thread_id = _get_ident()
        try:
            if context is None:
                step(*args)
            else:
                context.run(step, *args)
        finally:
            self._thread_id = None
            _set_running_loop(None)
            self._eager_step = False
        if task.done() and not self._eager_scheduled:
            # BaseEventLoop's own queues: callbacks due, timers pending.
            if self._ready or self._scheduled:
                self._turn()
            else:
                now = _monotonic()
                if now - self._last_turn > TURN_EVERY:
                    if len(self._selector.get_map()) > 1:  # a file besides the self-pipe
                        self._turn()
                    else:  # nothing waits on I/O: no turn needed (a thread's or a
                        # signal's callback lands in _ready, seen above)
                        self._last_turn = now
            return task.result()
        return self._turn(task)

    def _turn(self, task: Any = None) -> Any:
        self._last_turn = time.monotonic()
        if task is None:
            return self.run_until_complete(asyncio.sleep(0))
        return self.run_until_complete(task)
