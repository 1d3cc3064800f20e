"""The master process for ``--workers N``: owns the listening sockets, forks the workers,
watches them, and turns signals into lifecycle actions. It never serves HTTP.

Signals: TERM/INT graceful stop (a second INT: now), QUIT fast stop, HUP rolling restart
(one worker at a time, the new one ready before the old one drains), TTIN/TTOU one worker
more/less. A worker that dies is replaced (with backoff when they die in a loop); a worker
that cannot boot (import error, lifespan failure) stops the master with exit status 3.

Each worker has a pipe to the master: it writes ``R`` once it serves.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import select
import signal
import socket
import time
from typing import Any

from .hooks import call_hook
from .logs import reopen_log_files

__all__ = ["Supervisor", "BOOT_FAILED"]

logger = logging.getLogger("betula.error")

_RELOAD = -1  # a pseudo-signal queued by the --reload watcher
BOOT_FAILED = 3  # a worker's exit status when it could not load or start its app
BOOT_TIMEOUT = 60.0  # a worker not ready by then counts as failed to boot (HUP waits this)


class Worker:
    def __init__(self, pid: int, ready_fd: int, number: int) -> None:
        self.pid = pid
        self.ready_fd = ready_fd
        self.number = number
        self.ready = False
        self.started = time.monotonic()
        self.last_beat = self.started
        self.retiring = False  # told to stop by the master: its exit is expected
        self.wants_recycle = False  # it asked to be replaced (--limit-max-requests/-rss)
        self.stuck = False
        self.replaced_for: str | None = None  # "recycle" or "reload": why a new one took over


class Supervisor:
    def __init__(self, config: Any, sockets: list[socket.socket], worker_main: Any,
                 workers: int, metrics: Any = None, metrics_server: Any = None) -> None:
        self.config = config
        self.metrics = metrics  # MasterMetrics (metrics.py), or None: no metrics
        self.metrics_server = metrics_server  # its listener: closed in each worker
        self.sockets = sockets
        self.worker_main = worker_main  # called in the child with the ready callback
        self.target = workers
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self.exit_code = 0
        # Appended by signal handlers and the reload thread, drained by the master loop.
        self._signals: collections.deque[int] = collections.deque()
        self._deaths: list[float] = []
        self._not_before = 0.0  # while backing off, no worker starts before this
        self._backoff_from = 0.0  # when the current backoff began
        self._announced = False  # when_ready called
        self._numbers = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- the master loop -------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self._write_pid()
        reloader = None
        if self.config.reload:
            from .reload import Reloader

            reloader = Reloader(self.config, self._changed)
            reloader.start()
        try:
            logger.info("Master %d starting %d workers", os.getpid(), self.target)
            for _ in range(self.target):
                self.spawn()
            while True:
                wait = 1.0
                if self._not_before:
                    wait = min(wait, max(0.01, self._not_before - time.monotonic()))
                self._wait(wait)
                self._reap()
                if self.exit_code == BOOT_FAILED:
                    logger.error("Stopping: a worker could not boot (see its error above)")
                    self._stop_all(signal.SIGTERM, self.config.timeout_graceful_shutdown)
                    return BOOT_FAILED
                for sig in self._take_signals():
                    if self._handle(sig):
                        return self.exit_code
                if not self._announced and self.workers and \
                        all(w.ready for w in self.workers.values()):
                    self._announced = True
                    call_hook(self.config, "when_ready")
                if not self.stopping:
                    self._recycle_requested()
                    self._kill_stuck()
                    self._maintain()
        finally:
            if reloader is not None:
                reloader.stop()
            self._remove_pid()

    def _changed(self, paths: list[str]) -> None:
        """From the reload thread: note the change and wake the master loop."""
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        logger.info("Changed: %s: reloading", shown)
        self._signals.append(_RELOAD)
        try:
            os.write(self._wake_w, b"r")
        except OSError:
            pass

    def _handle(self, sig: int) -> bool:
        """Act on one signal; True when the master should exit now."""
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self.stopping and sig == signal.SIGINT:
                logger.warning("second interrupt: stopping workers now")
                self._stop_all(signal.SIGKILL, 0)
                return True
            logger.info("Master received %s: stopping workers gracefully",
                        signal.Signals(sig).name)
            self.stopping = True
            self._stop_all(signal.SIGTERM, self.config.timeout_graceful_shutdown + 5)
            return True
        if sig == signal.SIGQUIT:
            logger.info("Master received SIGQUIT: stopping now")
            self.stopping = True
            self._stop_all(signal.SIGQUIT, 5)
            return True
        if sig == signal.SIGHUP or sig == _RELOAD:
            if sig == signal.SIGHUP:
                logger.info("Master received SIGHUP: replacing workers one at a time")
            self.rolling_restart()
        elif sig == signal.SIGUSR1:
            logger.info("Master received SIGUSR1: reopening log files")
            reopen_log_files()
            for pid in list(self.workers):
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
        elif sig == signal.SIGTTIN:
            self.target += 1
            logger.info("Master received SIGTTIN: %d workers", self.target)
        elif sig == signal.SIGTTOU:
            if self.target > 1:
                self.target -= 1
            logger.info("Master received SIGTTOU: %d workers", self.target)
        return False

    def _maintain(self) -> None:
        live = [w for w in self.workers.values() if not w.retiring]
        while len(live) < self.target:
            now = time.monotonic()
            if self._not_before:
                # Backing off: the main loop keeps handling signals meanwhile.
                if now < self._not_before:
                    return
                # Said with the time actually waited, so the log shows the backoff was kept.
                logger.info("backed off %.1f s: starting the next worker",
                            now - self._backoff_from)
                self._not_before = 0.0
            else:
                delay = self._backoff_delay(now)
                if delay:
                    logger.warning("workers are dying in a loop: waiting %.1f s before the "
                                   "next", delay)
                    self._backoff_from = now
                    self._not_before = now + delay
                    return
            live.append(self.spawn())
        while len(live) > self.target:
            newest = max(live, key=lambda w: w.number)
            self._retire(newest, signal.SIGTERM)
            live.remove(newest)

    def _recycle_requested(self) -> None:
        for worker in [w for w in self.workers.values() if w.wants_recycle and not w.retiring]:
            worker.wants_recycle = False
            worker.replaced_for = "recycle"
            logger.info("Recycling worker %d (pid %d)", worker.number, worker.pid)
            self._replace(worker)

    def _kill_stuck(self) -> None:
        limit = self.config.timeout_worker
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.ready and not worker.retiring and now - worker.last_beat > limit:
                logger.error("Worker %d (pid %d) has not answered for %.0f s "
                             "(--timeout-worker %g): killing it", worker.number, worker.pid,
                             now - worker.last_beat, limit)
                worker.stuck = True
                try:
                    os.kill(worker.pid, signal.SIGUSR2)  # it logs what it is stuck on
                    deadline = time.monotonic() + 1.0
                    while time.monotonic() < deadline:
                        self._wait(0.1)
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _backoff_delay(self, now: float) -> float:
        self._deaths = [t for t in self._deaths if now - t < 10.0]
        if len(self._deaths) >= 5:
            return min(10.0, 0.5 * 2 ** (len(self._deaths) - 5))
        return 0.0

    # -- workers -------------------------------------------------------------------------
    def spawn(self) -> Worker:
        ready_r, ready_w = os.pipe()
        self._numbers += 1
        number = self._numbers
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_r)
            os.set_blocking(ready_w, False)  # never let a slow master block the event loop
            code = 1
            try:
                self._child_setup()
                code = self.worker_main(lambda message: _tell(ready_w, message))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - the worker must end here, never return
                logger.exception("worker crashed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        worker = Worker(pid, ready_r, number)
        self.workers[pid] = worker
        if self.metrics is not None:
            self.metrics.workers = len(self.workers)
        logger.info("Booting worker %d (pid %d)", number, pid)
        return worker

    def _child_setup(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)  # the worker's event loop installs its own
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # (until the worker installs its own)
        signal.set_wakeup_fd(-1)
        if self.metrics_server is not None:
            self.metrics_server.close_in_child()
        os.close(self._wake_r)
        os.close(self._wake_w)
        for worker in self.workers.values():
            os.close(worker.ready_fd)

    def _retire(self, worker: Worker, sig: int) -> None:
        # Said by the master itself, so the log shows when each worker was told to go (a
        # rolling restart stops one old worker before it boots the next new one).
        logger.info("Stopping worker %d (pid %d) with %s", worker.number, worker.pid,
                    signal.Signals(sig).name)
        worker.retiring = True
        try:
            os.kill(worker.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.ready_fd)
            self._read_pipe(worker)  # it may have said ready just before dying
            call_hook(self.config, "on_worker_exit", pid)
            if self.metrics is not None:
                self.metrics.worker_exited(pid, self._restart_reason(worker))
                self.metrics.workers = len(self.workers)
            how = _describe_status(status)
            if worker.stuck:
                logger.error("Worker %d (pid %d) killed after being stuck; starting a new one",
                             worker.number, pid)
                continue
            if worker.retiring or self.stopping:
                logger.info("Worker %d (pid %d) exited: %s", worker.number, pid, how)
                continue
            code = os.waitstatus_to_exitcode(status)
            if not worker.ready and code == BOOT_FAILED:
                logger.error("Worker %d (pid %d) failed to boot", worker.number, pid)
                self.exit_code = BOOT_FAILED
                return
            logger.error("Worker %d (pid %d) died: %s; starting a new one", worker.number, pid,
                         how)
            self._deaths.append(time.monotonic())

    def _restart_reason(self, worker: Worker) -> str | None:
        """Why ``worker`` (just exited) is replaced, for the metrics; None: it is not."""
        if self.stopping:
            return None
        if worker.stuck:
            return "timeout"
        if worker.retiring:
            return worker.replaced_for  # (None: retired for good, e.g. by TTOU)
        return "crash"

    def _read_pipe(self, worker: Worker) -> None:
        """R: ready; H: heartbeat; X: asks to be recycled."""
        try:
            data = os.read(worker.ready_fd, 4096)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        worker.last_beat = time.monotonic()
        if b"R" in data:
            worker.ready = True
        if b"X" in data:
            worker.wants_recycle = True

    def _replace(self, old: Worker) -> bool:
        """Start a new worker, wait until it serves, then drain ``old``; False if the new
        one did not come up (``old`` keeps serving)."""
        new = self.spawn()
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not new.ready and time.monotonic() < deadline:
            self._wait(0.05)
            self._reap()
            if new.pid not in self.workers:  # the new one died while booting
                if self.exit_code == BOOT_FAILED:
                    # The changed code does not boot: keep the old workers serving.
                    logger.error("replacement abandoned: the new worker failed to boot; the "
                                 "old one keeps serving")
                    self.exit_code = 0
                return False
        if not new.ready:
            logger.error("replacement abandoned: the new worker was not ready in %g s",
                         BOOT_TIMEOUT)
            self._retire(new, signal.SIGKILL)
            return False
        self._retire(old, signal.SIGTERM)
        return True

    def rolling_restart(self) -> None:
        """Replace each worker: start the new one, wait until it serves, then drain the old."""
        for old in [w for w in self.workers.values() if not w.retiring]:
            old.replaced_for = "reload"
            if not self._replace(old):
                logger.error("rolling restart abandoned")
                return
        logger.info("Rolling restart done")

    def _stop_all(self, sig: int, timeout: float) -> None:
        for worker in list(self.workers.values()):
            self._retire(worker, sig)
        deadline = time.monotonic() + timeout
        while self.workers and time.monotonic() < deadline:
            self._wait(0.05)
            self._reap()
            for extra in self._take_signals():
                if extra == signal.SIGINT:
                    logger.warning("second interrupt: stopping workers now")
                    deadline = 0
        for worker in list(self.workers.values()):
            logger.warning("Worker %d (pid %d) did not stop in time: killing it",
                           worker.number, worker.pid)
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while self.workers and time.monotonic() < end:
            self._wait(0.05)
            self._reap()

    # -- signals and waiting -------------------------------------------------------------
    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                    signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig: int, frame: Any) -> None:
        if sig != signal.SIGCHLD:
            self._signals.append(sig)

    def _take_signals(self) -> list[int]:
        taken = []
        while self._signals:
            taken.append(self._signals.popleft())
        return taken

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r] + [w.ready_fd for w in self.workers.values()]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        except OSError as exc:  # a ready fd closed under us by a reap
            if exc.errno == errno.EBADF:
                return
            raise
        for fd in readable:
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
        for worker in list(self.workers.values()):
            if worker.ready_fd in readable:
                self._read_pipe(worker)

    def _write_pid(self) -> None:
        if self.config.pid:
            with open(self.config.pid, "w") as fh:
                fh.write(f"{os.getpid()}\n")

    def _remove_pid(self) -> None:
        if self.config.pid:
            try:
                os.unlink(self.config.pid)
            except FileNotFoundError:
                pass


def _tell(fd: int, message: bytes) -> None:
    try:
        os.write(fd, message)
    except OSError:  # the master is gone or slow: a lost heartbeat is not worth a crash
        pass


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1

