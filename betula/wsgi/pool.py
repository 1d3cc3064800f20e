"""The worker's WSGI thread pool: a queue and N threads, nothing more.

concurrent.futures.ThreadPoolExecutor builds a Future, a work item and a semaphore release
per task; the adapter needs none of them (a cycle reports its own result), and measured on
the hello benchmark the bare queue serves about a third more requests per second.

On Linux the threads run under the SCHED_BATCH policy (``--threads-batch``, on by default).
A thread woken for a request would otherwise preempt the event loop thread that woke it,
find the GIL held by that same thread, and sleep again: two wasted context switches per
hand-off (``perf stat``: ~94k context switches a second under the hello benchmark). A
SCHED_BATCH thread does not preempt on wake-up; it runs when the loop thread blocks (on
the poll that releases the GIL) or its time slice ends, so a loop turn's requests are
served in one go. Measured: 2.6k context switches a second, server CPU per hello request
~27 -> ~19 us, p99 latency 3.4 -> 1.8 ms. Fairness is unchanged: a batch thread still gets
its share of CPU, only wake-up preemption is given up.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

__all__ = ["ThreadPool", "batch_scheduling"]

logger = logging.getLogger("betula.error")


def batch_scheduling() -> bool:
    """Put the calling thread under SCHED_BATCH; False where the OS has no such policy."""
    setter = getattr(os, "sched_setscheduler", None)
    policy = getattr(os, "SCHED_BATCH", None)
    if setter is None or policy is None:
        return False
    try:
        setter(0, policy, os.sched_param(0))  # pid 0: this thread (policies are per thread)
    except OSError:
        return False
    return True


class ThreadPool:
    def __init__(self, size: int, name: str = "betula-wsgi", batch: bool = True) -> None:
        self.size = size
        self.name = name
        self.batch = batch
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        if len(self._threads) < self.size:
            self._grow()
        self._queue.put(task)

    def _grow(self) -> None:
        # Threads start as work arrives (one per submit until the pool is full), so an idle
        # worker holds no threads it never used.
        with self._lock:
            if len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
                if len(self._threads) == self.size:
                    # Full: from now on submit is the queue's own put (no Python call).
                    self.submit = self._queue.put  # type: ignore[method-assign]

    def _work(self) -> None:
        if self.batch:
            batch_scheduling()
        get = self._queue.get
        while True:
            task = get()
            if task is None:
                return
            try:
                task()
            except BaseException:  # noqa: BLE001 - a task reports its own errors; keep serving
                logger.exception("unexpected error in a WSGI thread")
            # Let go of the finished request now: held until the next get(), an idle
            # thread's last request (environ, body, cycle) would stay alive for as long as
            # the thread waits.
            task = None

    def shutdown(self) -> None:
        """Let idle threads end; threads still running an app end with the process."""
        for _ in self._threads:
            self._queue.put(None)
