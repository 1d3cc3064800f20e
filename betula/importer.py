"""Load an application from a ``module:attr`` spec, with one clear message per failure."""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

__all__ = ["AppLoadError", "import_from_string", "load_app"]


class AppLoadError(Exception):
    """The app spec could not be turned into a callable; ``str()`` is a one-line reason."""


def import_from_string(spec: str) -> Any:
    if not isinstance(spec, str) or not spec.strip():
        raise AppLoadError("no application given: pass MODULE:ATTRIBUTE, e.g. 'myapp:app'")
    module_name, _, attrs = spec.partition(":")
    attrs = attrs or "app"
    if not module_name:
        raise AppLoadError(f"invalid application {spec!r}: expected MODULE:ATTRIBUTE")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "the module itself is missing" is the user's spec problem; a missing
        # import inside the module is an error in the module and gets its location.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"module {module_name!r} not found (looked in sys.path; "
                               "use --app-dir to add a directory)") from None
        raise AppLoadError(_import_failure(module_name, exc)) from exc
    except (Exception, SystemExit) as exc:  # import raising anything, SyntaxError included
        raise AppLoadError(_import_failure(module_name, exc)) from exc
    obj: Any = module
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    return obj


def _import_failure(module_name: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" at {exc.filename}:{exc.lineno}"
    elif frames:
        last = frames[-1]
        where = f" at {last.filename}:{last.lineno}"
    return f"importing module {module_name!r} raised {type(exc).__name__}: {exc}{where}"


def load_app(spec: Any, *, factory: bool = False, app_dir: str | None = None) -> Any:
    """Return the application callable for ``spec`` (a string or an object)."""
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app = import_from_string(spec) if isinstance(spec, str) else spec
    name = spec if isinstance(spec, str) else repr(spec)
    if factory:
        if not callable(app):
            raise AppLoadError(f"factory {name!r} is not callable")
        try:
            app = app()
        except Exception as exc:
            raise AppLoadError(f"factory {name!r} raised {type(exc).__name__}: {exc}") from exc
    if not callable(app):
        raise AppLoadError(f"application {name!r} is not callable (got {type(app).__name__})")
    return app
