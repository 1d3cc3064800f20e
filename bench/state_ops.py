"""Shared state and pub/sub, measured from a request handler (issue 16): ops/s and p99 of
``get``, ``set``, ``incr`` and ``publish`` on the embedded backend (1 worker: in-process;
2 workers: the master over its Unix socket) and on Redis, beside a bare ``redis.asyncio``
call; then the request rate and p99 of a plain ASGI endpoint and of a FastAPI view with one
``incr`` per request against the same without it, on heads that never repeat (wrk with
bench/unique.lua, server pinned to CPU 1, wrk to CPU 0).

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


def _server(workers: int, extra: list[str], env: dict[str, str],
            app: str = "bench.state_app:app") -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "betula", app,
         "--port", str(port), "--workers", str(workers), "--no-access-log",
         "--log-level", "warning", *extra], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(port)
    return proc, port


def _ops(port: int, op: str, calls: int) -> dict:
    url = f"http://127.0.0.1:{port}/ops?op={op}&n={calls}"
    runs = [json.loads(urllib.request.urlopen(url, timeout=60).read()) for _ in range(3)]
    return sorted(runs, key=lambda r: r["ops_per_s"])[1]  # the median of three


def _wrk(port: int, path: str, duration: int) -> tuple[float, float]:
    """req/s and p99 (ms) of wrk on ``path`` with heads that never repeat
    (bench/unique.lua: a new query string, cookie and request id every request)."""
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{duration}s",
                          "--latency", "-s", str(ROOT / "bench" / "unique.lua"),
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


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
                hello.append((name, "plain ASGI", _wrk(port, "/hello", args.duration),
                              _wrk(port, "/hello-incr", args.duration)))
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(20)
            proc, port = _server(workers, extra, env, "bench.state_fastapi:app")
            try:
                _wrk(port, "/hello", 2)
                hello.append((name, "FastAPI", _wrk(port, "/hello", args.duration),
                              _wrk(port, "/hello-incr", args.duration)))
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
    lines += ["", "Heads that never repeat (bench/unique.lua), req/s and p99:", "",
              "| backend | app | without | with one `aincr` a request | ratio |",
              "|---|---|---:|---:|---:|"]
    for name, app, (plain, plain_p99), (counted, counted_p99) in hello:
        lines.append(f"| {name} | {app} | {plain:,.0f} (p99 {plain_p99:.2f} ms) | "
                     f"{counted:,.0f} (p99 {counted_p99:.2f} ms) | {counted / plain:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / "results" / "state.md").write_text(
        f"bench/state_ops.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.calls} sequential awaited calls in one handler (median of 3 runs), wrk -t1 "
        f"-c64 -d{args.duration}s with bench/unique.lua (server on CPU 1, wrk on CPU 0)\n\n" + text)


if __name__ == "__main__":
    main()
