"""One app a worker serves: the whole server, or one ``--mount`` prefix (read by the
adapters, matched by the router)."""

from __future__ import annotations

from typing import Any

__all__ = ["Endpoint"]


class Endpoint:
    """One app the worker serves: the whole server, or one ``--mount`` prefix."""

    def __init__(self, app: Any, interface: str, name: str, prefix: str = "",
                 root_path: str = "") -> None:
        self.app = app
        self.interface = interface  # "asgi" or "wsgi"
        self.name = name
        self.prefix = "" if prefix == "/" else prefix  # matched against the request path
        self.path_prefix = root_path  # --root-path: prepended to ASGI paths (proxy stripped)
        self.root_path = root_path + self.prefix  # ASGI root_path, WSGI SCRIPT_NAME
        self.lifespan_state: dict[str, Any] | None = {}

    how = "configured"  # how the interface was decided: "auto-detected", "assumed", "configured"

    def describe(self, mounted: bool = False) -> str:
        where = f" at {self.prefix or '/'}" if mounted else ""
        return f"{self.name}{where} ({self.interface.upper()}, {self.how})"
