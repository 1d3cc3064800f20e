"""What a server, or an app through it, wrote to the log."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable


def new_id() -> str:
    """A fresh id for one test's records in a shared server's log."""
    return uuid.uuid4().hex[:12]


def records(srv, rid: str, marker: str = "RECORD") -> list:
    """Every JSON record an app logged as ``MARKER <rid> {...}``, in order."""
    prefix = f"{marker} {rid} "
    decoder = json.JSONDecoder()
    # raw_decode: with --workers another process's output may follow on the same line
    return [decoder.raw_decode(line.split(prefix, 1)[1])[0]
            for line in list(srv.lines) if prefix in line]


def wait_record(srv, rid: str, marker: str = "RECORD", timeout: float = 10.0,
                pred: Callable[[dict], bool] | None = None) -> dict:
    """The first JSON record an app logged as ``MARKER <rid> {...}`` (and that ``pred``
    accepts): what only the app can see."""
    pattern = rf"{marker} {re.escape(rid)} "
    deadline = time.monotonic() + timeout
    while True:
        for rec in records(srv, rid, marker):
            if pred is None or pred(rec):
                return rec
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the app recorded nothing (matching) for {rid}:\n{srv.log[-4000:]}"
        if pred is None:
            srv.wait_for_log(pattern, remaining)
        else:
            time.sleep(0.02)


def assert_logged_with_traceback(srv, text: str, timeout: float = 10.0) -> None:
    """``text`` (the exception line) is in the log, at the end of its own traceback."""
    assert srv.wait_for_log(re.escape(text), timeout) is not None, srv.log[-4000:]
    lines = srv.log.splitlines()
    end = next(i for i, line in enumerate(lines) if text in line)
    for line in reversed(lines[:end]):
        if line.startswith("Traceback (most recent call last)"):
            return
        assert not re.match(r"\d{4}-\d\d-\d\d ", line) and not line.startswith("RECORD"), (
            f"no traceback right before {text!r}:\n" + "\n".join(lines[max(0, end - 30):end + 1]))
    raise AssertionError(f"no traceback before {text!r}:\n{srv.log[-4000:]}")


def assert_clean(srv, start: int = 0, violations: Iterable[str] = ()) -> None:
    """No line from ``start`` on holds any of ``violations`` (validator complaints)."""
    new = "\n".join(srv.lines[start:])
    for text in violations:
        assert text not in new, f"reported in the server's log:\n{new[-6000:]}"
