"""CPU time the server spends per request: a noise-resistant A/B metric on a shared machine.

Throughput on this 2-core box moves with whatever else runs; the server's own CPU seconds
per request move far less. Usage:

    python bench/cpu_per_request.py [--path /] [--duration 5] [--env K=V ...] -- betula-args...

It starts ``python -m betula bench.app_asgi:app`` (or the given args) pinned to CPU 1, drives
it with wrk pinned to CPU 0, and prints requests, req/s and server CPU microseconds/request.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` and every live descendant (peers fork worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):
                continue
    tree = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    user = system = 0.0
    for member in tree:
        try:
            fields = _stat(member)
        except OSError:
            continue
        user += int(fields[11]) / TICK
        system += int(fields[12]) / TICK
    return user, system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="/")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--lua", default=None)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--cmd", default=None,
                        help="another server's command line, with {port} (e.g. a peer)")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    server_args = args.rest or ["bench.app_asgi:app"]
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "betula", *server_args,
           "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if args.cmd:
        cmd = ["taskset", "-c", "1", *args.cmd.format(port=port).split()]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}{args.path}"
        wrk = ["taskset", "-c", "0", "wrk", "-t1", "-c64"]
        if args.lua:
            wrk += ["-s", args.lua]
        subprocess.run(wrk + ["-d1s", url], capture_output=True, check=False)  # warm-up
        before = cpu_seconds(proc.pid)
        out = subprocess.run(wrk + [f"-d{args.duration}s", url], capture_output=True,
                             text=True, check=False).stdout
        after = cpu_seconds(proc.pid)  # threads included
        user, system = after[0] - before[0], after[1] - before[1]
        used = user + system
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        print(f"requests={requests} rps={rps:.0f} cpu_us_per_req={used / requests * 1e6:.1f}"
              f" (user {user / requests * 1e6:.1f}, system {system / requests * 1e6:.1f})")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
