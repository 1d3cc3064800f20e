"""Start serving from a resolved Config: load the app, open the listeners, run the worker."""

from __future__ import annotations

import logging
import sys
from typing import Any

from .importer import AppLoadError, load_app
from .listeners import ListenerError, create_sockets, create_ssl_context
from .server import Server
from .wsgi.http import is_wsgi_app

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
    interface = config.interface
    if interface == "auto":
        detected = is_wsgi_app(app)
        interface = "wsgi" if detected else "asgi"
        how = "detected" if detected is not None else "assumed: could not tell from the signature"
        logger.info("Interface: %s (%s; --interface to choose)", interface.upper(), how)
    try:
        return Server(config, app, sockets, app_name=str(config.app),
                      ssl_context=ssl_context, interface=interface).run()
    except ListenerError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sock in sockets:
            sock.close()
