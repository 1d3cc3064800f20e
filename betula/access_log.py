"""The access log: one line per response, written by the adapter that completed it."""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from .http_common import client_label, request_target

__all__ = ["AccessLog"]

access_logger = logging.getLogger("betula.access")


class AccessLog:
    """``CLIENT - "METHOD TARGET HTTP/V" STATUS BYTES DURATIONms`` on ``betula.access``."""

    __slots__ = ()

    @staticmethod
    def wanted(enabled: bool) -> AccessLog | None:
        """The log when ``--access-log`` is on and its logger would write: else None, so
        adapters skip the timing too."""
        if enabled and access_logger.isEnabledFor(logging.INFO):
            return AccessLog()
        return None

    def log(self, scope: dict[str, Any], status: int, size: int, started: float) -> None:
        duration = (perf_counter() - started) * 1000.0
        access_logger.info('%s - "%s %s HTTP/%s" %d %d %.2fms', client_label(scope),
                           scope["method"], request_target(scope), scope["http_version"],
                           status, size, duration)
