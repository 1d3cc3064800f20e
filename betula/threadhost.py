"""``--worker-mode thread``: the workers are threads of one process, each a ``Server`` with
its own event loop on the listening sockets the process inherited (every loop accepts on
them: a loop busy running an app leaves new connections to the others).

The process is a worker of the master like any other (``supervisor.py``): the master forks
it, replaces it when it dies, rolls it on HUP (a new process, ready before the old one
drains) and kills it when it stops answering. Inside, ``ThreadHost`` does for its threads
what the master does for processes, where a thread allows it:

- it tells the master ``R`` once every thread serves, and ``H`` (the heartbeat) only while
  every thread's loop beats: a thread stuck in an app stops the heartbeats, and the master
  replaces the whole process after ``--timeout-worker`` (a thread cannot be killed);
- a thread that asks to be recycled (``--limit-max-requests``, ``--limit-max-rss``) gets
  a new thread in its place, serving before the old one drains (the app's modules stay
  imported: recycling a thread frees what its requests held, not what the app imported);
- a thread whose server ends on its own (an error in the loop) is replaced; one that cannot
  start its app (a lifespan failure) stops the process with the boot-failure status;
- the signals come to the main thread (a thread's loop cannot take them): TERM stops every
  thread gracefully, QUIT at once, USR2 logs what each thread is stuck on, USR1 reopens the
  log files.

It needs a free-threaded CPython (3.13t or newer) to run the threads in parallel:
``gil_problem()`` says why not, for ``run.py`` to refuse (unless ``--allow-gil``).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from .logs import reopen_log_files
from .server import Server, log_in_flight
from .supervisor import BOOT_FAILED

__all__ = ["ThreadHost", "gil_problem", "importing_without_gil"]

logger = logging.getLogger("betula.error")

TICK = 0.1  # how often the main thread looks at its threads (seconds)


def gil_problem(modules: list[str] | None = None) -> str | None:
    """Why the threads of this interpreter would not run in parallel, or None. ``modules``:
    the extension modules that re-enabled the GIL when they were imported."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_enabled is None:
        version = ".".join(map(str, sys.version_info[:2]))
        return (f"--worker-mode thread needs a free-threaded CPython (3.13t or newer); this "
                f"is CPython {version} with the GIL (tools/build_free_threaded_python.sh "
                "builds one; or use --worker-mode process)")
    if not is_enabled():
        return None
    if modules:
        return (f"importing {', '.join(modules)} re-enabled the GIL (an extension that does "
                "not declare it can run without it): use --worker-mode process, or "
                "--allow-gil to run the threads anyway")
    return ("the GIL is enabled (PYTHON_GIL=1 or -X gil=1?): --worker-mode thread needs it "
            "off; use --worker-mode process, or --allow-gil to run the threads anyway")


class importing_without_gil:
    """Around an import: collects the modules that re-enabled the GIL (CPython warns once
    for each: "The global interpreter lock (GIL) has been enabled to load module 'x'")."""

    def __init__(self) -> None:
        self.modules: list[str] = []
        self._catch = warnings.catch_warnings(record=True)

    def __enter__(self) -> importing_without_gil:
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always", RuntimeWarning)
        return self

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)
        for caught in self._caught or ():
            text = str(caught.message)
            if "GIL" in text and "to load module" in text:
                self.modules.append(text.split("'")[1] if "'" in text else text)
            else:  # not ours: shown as it would have been
                warnings.warn_explicit(caught.message, caught.category, caught.filename,
                                       caught.lineno)


class _Slot:
    """One worker thread and what the main thread knows of it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.server: Server = None  # type: ignore[assignment]  # (made with its notify)
        self.thread: threading.Thread | None = None
        self.ready = False
        self.last_beat = time.monotonic()
        self.wants_recycle = False
        self.retiring = False  # told to stop: its end is expected
        self.exit_code: int | None = None  # once its server returned

    def notify(self, message: bytes) -> None:  # from the slot's own thread
        if message == b"R":
            self.ready = True
            self.last_beat = time.monotonic()
        elif message == b"H":
            self.last_beat = time.monotonic()
        elif message == b"X":
            self.wants_recycle = True


class ThreadHost:
    """``workers`` Servers in threads of this process, supervised from the main thread.

    ``make_server(notify)`` builds one thread's Server (its own endpoints and its own
    descriptors of the listening sockets, closed when it ends; told ``signals=False``);
    ``notify`` is the master's pipe (None without a master)."""

    def __init__(self, config: Any, workers: int,
                 make_server: Callable[[Callable[[bytes], None]], Server],
                 notify: Callable[[bytes], None] | None = None) -> None:
        self.config = config
        self.workers = workers
        self.make_server = make_server
        self.notify = notify
        self.slots: list[_Slot] = []
        self._numbers = 0
        self._stop = 0  # 1: graceful, 2: now
        self._dump = False  # SIGUSR2: log what each thread is on
        self._reopen = False  # SIGUSR1: reopen the log files
        self._wake = threading.Event()
        self._announced = False

    # -- the main thread -----------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        for _ in range(self.workers):
            self._start()
        code = 0
        last_beat = 0.0
        while True:
            self._wake.wait(TICK)
            self._wake.clear()
            if self._dump:
                self._dump = False
                for slot in self.slots:
                    if slot.server.worker_state is not None:
                        log_in_flight(slot.server.worker_state)
            if self._reopen:
                self._reopen = False
                reopen_log_files()
            if self._stop:
                break
            failed = self._look_after()
            if failed is not None:
                code = failed
                break
            now = time.monotonic()
            live = [slot for slot in self.slots if not slot.retiring]
            if not self._announced and live and all(slot.ready for slot in live):
                self._announced = True
                logger.info("All %d worker threads serving", len(live))
                if self.notify is not None:
                    self.notify(b"R")
            if self._announced and now - last_beat >= 1.0 and \
                    all(now - slot.last_beat < 2.5 for slot in live if slot.ready):
                last_beat = now
                if self.notify is not None:
                    self.notify(b"H")
        self._stop_all(force=self._stop > 1)
        return code

    def _start(self) -> _Slot:
        self._numbers += 1
        slot = _Slot(self._numbers)
        slot.server = self.make_server(slot.notify)
        thread = threading.Thread(target=self._thread_main, args=(slot,),
                                  name=f"betula-worker-{slot.number}", daemon=True)
        slot.thread = thread
        self.slots.append(slot)
        thread.start()
        logger.info("Booting worker thread %d", slot.number)
        return slot

    def _thread_main(self, slot: _Slot) -> None:
        code = 1
        try:
            code = slot.server.run()
        except BaseException:  # noqa: BLE001 - a thread's end is the main thread's to handle
            logger.exception("worker thread %d crashed", slot.number)
        finally:
            for sock in slot.server.sockets:  # (its own descriptors: see make_server)
                sock.close()
            slot.exit_code = code
            self._wake.set()

    def _look_after(self) -> int | None:
        """Replace ended and recycled threads; the exit status when the host must stop."""
        for slot in list(self.slots):
            if slot.exit_code is not None:
                self.slots.remove(slot)
                if slot.retiring:
                    logger.info("Worker thread %d stopped", slot.number)
                    continue
                if not slot.ready:
                    logger.error("Worker thread %d could not start its app (exit %d)",
                                 slot.number, slot.exit_code)
                    return BOOT_FAILED
                logger.error("Worker thread %d ended unexpectedly (exit %d): replacing it",
                             slot.number, slot.exit_code)
                self._start()
            elif slot.wants_recycle and not slot.retiring:
                slot.wants_recycle = False
                logger.info("Recycling worker thread %d", slot.number)
                self._replace(slot)
        return None

    def _replace(self, old: _Slot) -> None:
        new = self._start()
        deadline = time.monotonic() + 60.0
        while not new.ready and new.exit_code is None and not self._stop \
                and time.monotonic() < deadline:
            self._wake.wait(TICK)
            self._wake.clear()
        old.retiring = True
        old.server.request_stop()

    def _stop_all(self, force: bool) -> None:
        for slot in self.slots:
            slot.retiring = True
            slot.server.request_stop(force)
        # Each server keeps its own graceful deadline; a thread still in an app after that
        # (and a moment more) is left to end with the process. A QUIT meanwhile: now.
        deadline = time.monotonic() + self.config.timeout_graceful_shutdown + 5.0
        while any(slot.exit_code is None for slot in self.slots) and \
                time.monotonic() < deadline:
            self._wake.wait(TICK)
            self._wake.clear()
            if self._stop > 1 and not force:
                force = True
                for slot in self.slots:
                    slot.server.request_stop(True)
        for slot in self.slots:
            if slot.exit_code is None:
                logger.warning("worker thread %d still running at exit", slot.number)

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if self.notify is not None:
            # Under a master, Ctrl-C reaches the whole process group: the master turns it
            # into SIGTERM for each worker.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGQUIT, self._on_signal)
        signal.signal(signal.SIGUSR1, self._on_signal)
        signal.signal(signal.SIGUSR2, self._on_signal)

    def _on_signal(self, sig: int, frame: Any) -> None:
        if sig == signal.SIGUSR2:
            self._dump = True
        elif sig == signal.SIGUSR1:
            self._reopen = True
        elif sig == signal.SIGQUIT or (sig == signal.SIGINT and self._stop):
            self._stop = 2
        else:
            if not self._stop:
                logger.info("Received %s: shutting down gracefully",
                            signal.Signals(sig).name)
            self._stop = max(self._stop, 1)
        self._wake.set()
