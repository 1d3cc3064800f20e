"""What the kernel says of a server's processes (Linux /proc)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def vm_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of ``pid`` from /proc/PID/status, in KiB (VmRSS, VmHWM, ...)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (a master's workers)."""
    found: set[int] = set()
    paths = glob.glob(f"/proc/{pid}/task/*/children")
    if paths:
        for path in paths:
            try:
                with open(path) as fh:
                    found.update(int(p) for p in fh.read().split())
            except OSError:
                pass
    else:  # a kernel without CONFIG_PROC_CHILDREN
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                             check=False)
        found.update(int(p) for p in out.stdout.split())
    return {p for p in found if alive(p)}


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or the hang guard
    runs out (the last, falsy value is returned: the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def stop_browser(proc: subprocess.Popen) -> None:
    """Kill a browser started in its own session (``start_new_session``): it and its
    helper processes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
        pass
