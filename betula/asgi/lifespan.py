"""ASGI lifespan protocol: startup before the first request, shutdown after the last."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["LifespanFailure", "LifespanManager"]

logger = logging.getLogger("betula.error")


class LifespanFailure(Exception):
    """Startup (or shutdown) failed; the message is the app's or says what went wrong."""


class LifespanManager:
    """Runs one app's lifespan. ``mode`` is 'auto', 'on' or 'off'.

    In 'auto' an app that raises or returns before answering startup is taken as not
    supporting lifespan, and serving goes on quietly (a debug line says so).
    """

    def __init__(self, app: Any, mode: str = "auto", startup_timeout: float = 60.0,
                 shutdown_timeout: float = 30.0, name: str = "app") -> None:
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.name = name
        self.state: dict[str, Any] = {}
        self.supported = False
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answer: asyncio.Future[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._returned = False

    async def startup(self) -> None:
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self._task = loop.create_task(self._run(scope))
        await self._queue.put({"type": "lifespan.startup"})
        try:
            message = await asyncio.wait_for(asyncio.shield(self._answer), self.startup_timeout)
        except TimeoutError:
            raise LifespanFailure(
                f"lifespan startup of {self.name} did not finish within "
                f"{self.startup_timeout:g} s") from None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.supported = True
            return
        if kind == "lifespan.startup.failed":
            self.supported = True
            reason = message.get("message") or "(no message)"
            raise LifespanFailure(f"lifespan startup failed: {reason}")
        # The app raised or returned without answering.
        if self.mode == "on":
            if self._error is not None:
                raise LifespanFailure(
                    f"lifespan startup raised {type(self._error).__name__}: {self._error}")
            raise LifespanFailure("lifespan 'on' but the app returned without answering startup")
        if self._error is not None:
            logger.debug("lifespan unsupported by %s (%s: %s)", self.name,
                         type(self._error).__name__, self._error)

    async def shutdown(self) -> None:
        if not self.supported or self._task is None:
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        await self._queue.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(asyncio.shield(self._answer), self.shutdown_timeout)
        except TimeoutError:
            logger.error("lifespan shutdown of %s did not finish within %g s", self.name,
                         self.shutdown_timeout)
            self._task.cancel()
            return
        if message["type"] == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed: %s", message.get("message") or "(no message)")
        elif message["type"] != "lifespan.shutdown.complete" and self._error is not None:
            logger.error("lifespan shutdown raised %s: %s", type(self._error).__name__,
                         self._error)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._error = exc
            if self.supported or self.mode == "on":
                logger.error("Exception in lifespan of %s", self.name, exc_info=exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._returned = True
            if self._answer is not None and not self._answer.done():
                self._answer.set_result({"type": "lifespan.returned"})

    async def _receive(self) -> dict[str, Any]:
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        expected = {
            "lifespan.startup.complete", "lifespan.startup.failed",
            "lifespan.shutdown.complete", "lifespan.shutdown.failed",
        }
        if kind not in expected:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(message)
