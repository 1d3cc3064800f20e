"""Logging setup: ``betula.error`` for the server and app errors, ``betula.access`` per request."""

from __future__ import annotations

import logging
import sys

__all__ = ["TRACE", "access_log", "configure_logging", "error_log"]

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


def configure_logging(level: str = "info", access: bool = True) -> None:
    """Send both loggers to stderr with one format; the app's own logging is left alone."""
    numeric = _LEVELS[level]
    formatter = logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(message)s",
                                  "%Y-%m-%d %H:%M:%S")
    for logger in (error_log, access_log):
        logger.handlers.clear()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(numeric)
    if not access:
        access_log.setLevel(logging.CRITICAL + 1)
    logging.getLogger("betula").setLevel(numeric)
