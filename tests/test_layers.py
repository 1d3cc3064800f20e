"""Dependencies flow one way: settings -> supervisor -> worker -> listeners -> protocols ->
adapters -> app (issue 13). Read from the source: every ``import`` and ``from ... import``
of each module under betula/, including the ones under ``if TYPE_CHECKING:`` and inside
functions (a dependency is a dependency, whenever it is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "betula"

# Modules of the worker and above: nothing below the worker may import them.
WORKER_AND_ABOVE = {"betula.server", "betula.routing", "betula.run", "betula.supervisor",
                    "betula.threadhost", "betula.subinterp",
                    "betula.cli", "betula.reload", "betula.embed", "betula.exchange", "betula"}
ADAPTERS = ("betula.asgi", "betula.wsgi")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """The betula modules ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # "from . import x" / "from .pkg import mod": the names may be modules
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "betula" or m.startswith("betula.")}


def modules_under(prefix: str) -> list[Path]:
    root = PACKAGE.joinpath(*prefix.split(".")[1:])
    return sorted(root.rglob("*.py"))


def test_the_rule_reads_imports_it_would_have_to_refuse(tmp_path: Path) -> None:
    """The reader sees relative, TYPE_CHECKING and function-level imports (else the checks
    below could not fail)."""
    fake = PACKAGE / "protocols" / "h1" / "connection.py"
    found = imported_modules(fake)
    assert "betula.protocols.h1.response" in found
    assert "betula.logs" in found  # (a relative import three levels up)
    assert "betula.worker_state" in found  # imported under TYPE_CHECKING only


@pytest.mark.parametrize("path", modules_under("betula.protocols"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_protocols_import_nothing_from_the_adapters_or_the_worker(path: Path) -> None:
    bad = {m for m in imported_modules(path)
           if m in WORKER_AND_ABOVE or m.startswith(ADAPTERS)}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules_under("betula.asgi") + modules_under("betula.wsgi"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_adapters_import_nothing_from_the_worker(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m in WORKER_AND_ABOVE}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules_under("betula.asgi") + modules_under("betula.wsgi"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_adapters_speak_to_the_stream_not_to_http1(path: Path) -> None:
    """No HTTP/1 module behind the adapters: framing is the protocol's."""
    bad = {m for m in imported_modules(path) if m.startswith("betula.protocols.h1")}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules_under("betula.asgi") + modules_under("betula.wsgi"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_http1_bytes_under_the_adapters(path: Path) -> None:
    """Status lines, chunk framing and connection management are HTTP/1's, in
    protocols/h1/ alone."""
    text = path.read_text()
    for needle in ('b"HTTP/1.1 ', "b'HTTP/1.1 ", "transfer-encoding: chunked", "\\r\\n\\r\\n",
                   "connection: close"):
        assert needle not in text, f"{path.relative_to(PACKAGE)} contains {needle!r}"
