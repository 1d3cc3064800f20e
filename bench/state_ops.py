"""Shared state and pub/sub, measured from a request handler (issue 16): ops/s and p99 of
``get``, ``set``, ``incr`` and ``publish`` on the embedded backend (1 worker: in-process;
2 workers: the master over its Unix socket) and on Redis, beside a bare ``redis.asyncio``
call; then the request rate of a hello endpoint with one ``incr`` per request against the
same endpoint without it (wrk, server pinned to CPU 1, wrk to CPU 0).

    python bench/state_ops.py [--calls 2000] [--duration 5]

Needs redis-server and wrk. Prints a Markdown table; writes bench/results/state.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = ["get", "set", "incr", "publish", "sync-get"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _server(workers: int, extra: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "betula", "bench.state_app:app",
         "--port", str(port), "--workers", str(workers), "--no-access-log",
         "--log-level", "warning", *extra], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(port)
    return proc, port


def _ops(port: int, op: str, calls: int) -> dict:
    url = f"http://127.0.0.1:{port}/ops?op={op}&n={calls}"
    runs = [json.loads(urllib.request.urlopen(url, timeout=60).read()) for _ in range(3)]
    return sorted(runs, key=lambda r: r["ops_per_s"])[1]  # the median of three


def _wrk(port: int, path: str, duration: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{duration}s",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    redis_port = _free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                              "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = dict(os.environ, BENCH_REDIS_URL=redis_url,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    time.sleep(0.5)
    setups = [("embedded, 1 worker", 1, []), ("embedded, 2 workers (master)", 2, []),
              ("Redis, 1 worker", 1, ["--redis-url", redis_url])]
    rows = []
    hello = []
    try:
        for name, workers, extra in setups:
            proc, port = _server(workers, extra, env)
            try:
                ops = OPS + (["bare-get", "bare-incr"] if "Redis" in name else [])
                for op in ops:
                    rows.append((name, op, _ops(port, op, args.calls)))
                _wrk(port, "/hello", 2)  # warm-up
                plain = _wrk(port, "/hello", args.duration)
                counted = _wrk(port, "/hello-incr", args.duration)
                hello.append((name, plain, counted))
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(20)
    finally:
        redis.terminate()
        redis.wait(10)
    lines = ["| backend | call | ops/s | p50 µs | p99 µs |", "|---|---|---:|---:|---:|"]
    for name, op, r in rows:
        label = op.replace("bare-", "bare redis.asyncio ")
        lines.append(f"| {name} | {label} | {r['ops_per_s']:,.0f} | {r['p50_us']:.1f} | "
                     f"{r['p99_us']:.1f} |")
    lines += ["", "| backend | hello req/s | hello + one incr req/s | ratio |",
              "|---|---:|---:|---:|"]
    for name, plain, counted in hello:
        lines.append(f"| {name} | {plain:,.0f} | {counted:,.0f} | {counted / plain:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / "results" / "state.md").write_text(
        f"bench/state_ops.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.calls} sequential awaited calls in one handler (median of 3 runs), wrk -t1 "
        f"-c64 -d{args.duration}s (server on CPU 1, wrk on CPU 0)\n\n" + text)


if __name__ == "__main__":
    main()
