"""Lifecycle hooks from the settings (``module:function``): loaded once, called with the
config (and a worker pid for on_worker_exit). A failing hook is logged, never fatal, except
on_starting, whose failure stops the start (it runs before anything is served)."""

from __future__ import annotations

import logging
from typing import Any

from .importer import import_from_string

__all__ = ["call_hook", "HookError"]

logger = logging.getLogger("betula.error")


class HookError(Exception):
    """A hook could not be loaded; the message names the hook and the setting."""


def call_hook(config: Any, name: str, *args: Any, fatal: bool = False) -> None:
    spec = getattr(config, name)
    if not spec:
        return
    try:
        hook = import_from_string(spec)
    except Exception as exc:  # noqa: BLE001 - reported with the setting's name
        if fatal:
            raise HookError(f"cannot load hook {name}={spec!r}: {exc}") from None
        logger.error("cannot load hook %s=%r: %s", name, spec, exc)
        return
    try:
        hook(config, *args)
    except Exception:
        logger.exception("hook %s (%s) raised", name, spec)
        if fatal:
            raise HookError(f"hook {name}={spec!r} raised") from None
