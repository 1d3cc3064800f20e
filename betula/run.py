"""Start serving from a resolved Config: load the app, open the listeners, run the worker."""

from __future__ import annotations

import logging
import sys
from typing import Any

from .importer import AppLoadError, load_app
from .listeners import ListenerError, create_sockets, create_ssl_context
from .server import Server

__all__ = ["run"]

logger = logging.getLogger("betula.error")


def run(config: Any) -> int:
    """Serve until stopped; return the process exit status (non-zero on failure)."""
    try:
        app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
    except AppLoadError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    try:
        ssl_context = create_ssl_context(config)
        sockets = create_sockets(config)
    except ListenerError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    try:
        return Server(config, app, sockets, app_name=str(config.app),
                      ssl_context=ssl_context).run()
    except ListenerError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sock in sockets:
            sock.close()
