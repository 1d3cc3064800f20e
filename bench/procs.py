"""Server processes for the benchmark scripts that drive their own clients
(``h2_tls.py``, ``ws_h2.py``): a free port, a server started pinned to a CPU in its own
process group, its CPU time, and its stop. (``run.py``'s ``Running`` does the same for
its registry of servers, with logs kept.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["HOST", "free_port", "start_pinned", "stop", "cpu_of_group"]

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_pinned(argv: list[str], tree: Path, cpu: int = 1,
                 timeout: float = 30.0) -> tuple[subprocess.Popen, int]:
    """Start ``argv`` (``{port}`` replaced by a free port) from ``tree``, pinned to ``cpu``;
    return once it accepts connections."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(["taskset", "-c", str(cpu), *argv], cwd=tree,
                            env=dict(os.environ, PYTHONPATH=str(tree)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{argv[0]} did not start")


def stop(proc: subprocess.Popen) -> None:
    """SIGINT to the process group, SIGKILL after 10 s."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_of_group(pgid: int) -> float:
    """CPU seconds (user + system) the process group ``pgid`` has used so far."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICK
