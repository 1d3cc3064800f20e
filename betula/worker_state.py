"""A worker's bookkeeping, as one record every layer below the worker may read.

The worker (``server.py``) creates one ``WorkerState`` and hands it down: protocols
register their connections in it and read its coarse clock; adapters count the requests
they start, track the ones running (for the graceful stop and ``--limit-concurrency``),
create their tasks with ``new_task`` and write the access log. It holds no logic of the
worker's, so nothing below the worker imports the worker.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from .access_log import AccessLog

__all__ = ["WorkerState"]


class WorkerState:
    """Counters and sets of one worker, shared by its protocols and adapters."""

    __slots__ = ("config", "loop", "new_task", "connections", "active", "requests", "clock",
                 "access_log", "metrics", "timed", "pool", "limit_concurrency")

    def __init__(self, config: Any | None, loop: asyncio.AbstractEventLoop | None, *,
                 access_log: AccessLog | None = None, metrics: Any = None,
                 pool: Any = None) -> None:
        self.config = config  # the settings (read-only below the worker)
        self.loop = loop  # None: no event loop (embedded WSGI calls, in the caller's thread)
        if loop is None:
            self.new_task: Any = None
        elif loop.get_task_factory() is None:
            # A Task with a name given: without one, each Task formats "Task-<n>" for
            # itself (~1.5k instructions a request on 3.11, callgrind).
            self.new_task = functools.partial(asyncio.Task, loop=loop, name="betula-request")
        else:  # pragma: no cover - someone installed a task factory: respect it
            self.new_task = loop.create_task
        self.connections: set[Any] = set()  # open connections (any protocol)
        self.active: set[Any] = set()  # exchanges whose app is running
        self.requests = 0  # started, for --limit-max-requests
        self.clock = loop.time() if loop is not None else 0.0  # coarse: the worker's tick
        self.access_log = access_log  # None: no access log
        self.metrics = metrics  # the metrics Recorder (metrics.py), or None: no metrics
        # Either wants each request's start time (adapters read the clock only then).
        self.timed = access_log is not None or metrics is not None
        self.pool = pool  # the WSGI thread pool (owned by the worker), or None
        # No settings (embedded calls, adapter tests): no concurrency limit.
        self.limit_concurrency = config.limit_concurrency if config is not None else 0

    def over_limit(self) -> bool:
        """``--limit-concurrency``: more connections and running apps than allowed."""
        limit = self.limit_concurrency
        return limit > 0 and len(self.connections) + len(self.active) > limit

    def running_tasks(self) -> list[asyncio.Task[Any]]:
        tasks = []
        for exchange in self.active:
            task = exchange.task
            if task is not None and not task.done():
                tasks.append(task)
        return tasks
