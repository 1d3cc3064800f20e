"""Fill the README's generated blocks: the option table (from the settings registry) and the
benchmark tables (from bench/results/latest.md and websocket.md). Run after changing either."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from betula.config import settings_markdown  # noqa: E402


def fill(text: str, name: str, content: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {name} block")
    return pattern.sub(lambda m: m.group(1) + content.rstrip("\n") + "\n" + m.group(2), text)


def main() -> None:
    readme = ROOT / "README.md"
    text = fill(readme.read_text(), "options", settings_markdown())
    # bench/run.py writes latest.md (HTTP, WSGI) and websocket.md (the wsecho scenario).
    for block, name in (("bench", "latest.md"), ("bench-ws", "websocket.md")):
        results = ROOT / "bench" / "results" / name
        if results.exists():
            body = results.read_text()
            body = re.sub(r"^# .*\n+", "", body)  # the file's own title
            text = fill(text, block, body)
    readme.write_text(text)


if __name__ == "__main__":
    main()
