"""Logging setup: ``betula.error`` for the server and app errors, ``betula.access`` per request."""

from __future__ import annotations

import logging
import sys

__all__ = ["TRACE", "access_log", "configure_logging", "error_log", "reopen_log_files"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

error_log = logging.getLogger("betula.error")
access_log = logging.getLogger("betula.access")

_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


class _ReopenedFile(logging.FileHandler):
    """A file handler that reopens its file on ``reopen()`` (SIGUSR1, after logrotate
    moved it): the next line goes to a new file of the same name."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def configure_logging(level: str = "info", access: bool = True, access_file: str = "",
                      access_bare: bool = False) -> None:
    """Send both loggers to stderr with one format; the app's own logging is left alone.
    ``access_file``: the access log's own destination (a path, appended to, or "-" for
    stdout). ``access_bare``: access lines are written as they are, without the prefix
    (a gunicorn format or JSON lines)."""
    numeric = _LEVELS[level]
    formatter = logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(message)s",
                                  "%Y-%m-%d %H:%M:%S")
    for logger in (error_log, access_log):
        logger.handlers.clear()
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        if logger is access_log:
            if access_file == "-":
                handler = logging.StreamHandler(sys.stdout)
            elif access_file:
                handler = _ReopenedFile(access_file, encoding="utf-8")
            if access_bare:
                handler.setFormatter(logging.Formatter("%(message)s"))
            else:
                handler.setFormatter(formatter)
        else:
            handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(numeric)
    if not access:
        access_log.setLevel(logging.CRITICAL + 1)
    logging.getLogger("betula").setLevel(numeric)


def reopen_log_files() -> None:
    """SIGUSR1: reopen the files logs go to (after logrotate moved them)."""
    for logger in (error_log, access_log):
        for handler in logger.handlers:
            if isinstance(handler, _ReopenedFile):
                handler.reopen()
