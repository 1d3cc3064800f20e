"""Worker modes side by side with two workers: a CPU-bound WSGI view (pure Python, about
20 ms a request) under two concurrent clients, and hello under wrk. Process mode on each
interpreter, thread mode on the free-threaded build, subinterpreter mode on 3.13.

    python bench/worker_modes.py [--burn-requests 60] [--seconds 5]

Interpreters: $BETULA_FT_PYTHON (else tools/free_threaded_env.sh's cache) and
$BETULA_SUBINTERP_PYTHON (else tools/subinterpreter_env.sh). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.thread_apps:wsgi"


def interpreters() -> dict[str, str]:
    ft = os.environ.get("BETULA_FT_PYTHON") or str(
        Path.home() / ".cache/betula/python-3.13.5t/bin/python3.13t")
    sub = os.environ.get("BETULA_SUBINTERP_PYTHON") or subprocess.run(
        [str(ROOT / "tools/subinterpreter_env.sh")], capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    return {"ft": ft, "sub": sub}


def start(python: str, mode: str, port: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([python, "-m", "betula", APP, "--worker-mode", mode, "--workers",
                             "2", "--port", str(port), "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                conn.close()
                time.sleep(1.0)  # every worker up
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{mode} did not start: {proc.stdout.read() if proc.stdout else ''}")


def burn_rate(port: int, requests: int) -> float:
    """Requests a second of /burn (about 20 ms of CPU each) from two clients."""
    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(requests // 2):
            conn.request("GET", "/burn?rounds=200000")
            conn.getresponse().read()
        conn.close()
    threads = [threading.Thread(target=client) for _ in range(2)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return requests / (time.monotonic() - begin)


def hello_rate(port: int, seconds: int) -> tuple[float, str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return 0.0, "-"
    out = subprocess.run([wrk, "-t1", "-c32", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out)
    return rate, p99.group(1) if p99 else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burn-requests", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    found = interpreters()
    runs = [("process", "3.11", sys.executable), ("process", "3.13", found["sub"]),
            ("subinterpreter", "3.13", found["sub"]), ("process", "3.13t", found["ft"]),
            ("thread", "3.13t", found["ft"])]
    print("| mode | Python | CPU-bound req/s (2 clients) | hello req/s | hello p99 |")
    print("|---|---|---|---|---|")
    for number, (mode, version, python) in enumerate(runs):
        port = 8970 + number
        proc = start(python, mode, port)
        try:
            burn_rate(port, 10)  # warm-up
            burn = burn_rate(port, args.burn_requests)
            hello, p99 = hello_rate(port, args.seconds)
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"| {mode} | {version} | {burn:.1f} | {hello:,.0f} | {p99} |", flush=True)


if __name__ == "__main__":
    main()
