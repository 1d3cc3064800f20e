"""``--reload``: watch source files (watchfiles) and roll the workers when one changes.

The watcher runs in a thread of the master and only raises a flag; the master does a
rolling restart, so a change whose new code does not import (a syntax error) is logged and
the old workers keep serving until the next change fixes it.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Reloader", "DEFAULT_INCLUDE", "DEFAULT_EXCLUDE"]

logger = logging.getLogger("betula.error")

DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE = (".*", "*.py[cod]", "*~", "__pycache__", "*.swp")


class Reloader:
    def __init__(self, config: Any, on_change: Callable[[list[str]], None]) -> None:
        self.dirs = [str(Path(d).resolve()) for d in (config.reload_dir or (os.getcwd(),))]
        self.include = tuple(config.reload_include or DEFAULT_INCLUDE)
        self.exclude = tuple(config.reload_exclude or DEFAULT_EXCLUDE)
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self, path: str) -> bool:
        parts = Path(path).parts
        name = parts[-1] if parts else path
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude):
            return False
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.include)

    def start(self) -> None:
        import watchfiles  # imported here: only --reload needs it

        def run() -> None:
            for changes in watchfiles.watch(*self.dirs, stop_event=self._stop,
                                            watch_filter=lambda _c, p: self.wanted(p),
                                            raise_interrupt=False, debounce=200):
                paths = sorted({p for _c, p in changes})
                if paths:
                    self.on_change(paths)

        self._thread = threading.Thread(target=run, name="betula-reload", daemon=True)
        self._thread.start()
        logger.info("Watching %s for changes to %s", ", ".join(self.dirs),
                    ", ".join(self.include))

    def stop(self) -> None:
        self._stop.set()
