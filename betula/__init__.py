"""Betula: a fast Python application server for ASGI and WSGI apps."""

__version__ = "0.1.0"

from .embed import (  # noqa: E402  (the embedding API, re-exported at top level)
    Embedded,
    arun_asgi,
    build_environ,
    build_scope,
    default_asgi_handler,
    default_wsgi_handler,
    run_asgi,
    run_wsgi,
)

__all__ = [
    "__version__", "Embedded", "arun_asgi", "build_environ", "build_scope",
    "default_asgi_handler", "default_wsgi_handler", "run_asgi", "run_wsgi",
]
