#!/usr/bin/env python3
"""Flow control, measured: Betula's peak memory during a 1 GiB upload and a 1 GiB download.

Usage (from anywhere):
    python bench/memory.py [--size-mib 1024]

Two runs, each against a fresh ``python -m betula bench.memory:app`` (the real CLI, default
settings: ``--limit-request-body`` is 1 GiB, so a 1 GiB upload is allowed):

- upload: a client streams the body as fast as it can (Content-Length framing) to an app that
  reads slowly (1 ms sleep after every ``receive()``, and at most 200 MiB/s);
- download: the app sends the body in fresh 64 KiB chunks with ``more_body``; the client
  reads nothing for 2 s, then reads slowly (256 KiB per recv, 1 ms sleep in between).

For each run it prints the server's peak RSS (``VmHWM`` in /proc/PID/status) before the
transfer (after a warm-up request) and after it, the growth, and the byte count checked on
the other side. With flow control both ways the growth stays a few MiB, not a GiB.
Linux only (reads /proc). Standard library only. A script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MIB = 1024 * 1024
CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)
UPLOAD_RATE = 200 * MIB  # bytes/s the slow app consumes at most
STREAM = PATTERN * 5  # what the client compares against (the download is 0..255 repeated)


# -- the app (served by the child process as bench.memory:app) ---------------------------------
async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/upload":
        total = 0
        messages = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            messages += 1
            if not message.get("more_body", False):
                break
            await asyncio.sleep(max(0.001, len(body) / UPLOAD_RATE))  # a slow consumer
        body = json.dumps({"bytes": total, "messages": messages}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif scope["path"] == "/download":
        size = int(scope["query_string"].decode().partition("=")[2])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(size).encode())]})
        left = size
        while left > 0:
            n = min(CHUNK, left)
            left -= n
            # a fresh object per chunk, as a real app's would be
            await send({"type": "http.response.body", "body": bytes(memoryview(PATTERN)[:n]),
                        "more_body": left > 0})
    else:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


# -- the driver -------------------------------------------------------------------------------
class Server:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "betula", "bench.memory:app", "--port", "0",
             "--no-access-log"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.port: int | None = None
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                match = re.search(r"Listening on http://[^\s]*:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                if "serving" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or self.port is None or self.proc.poll() is not None:
            self.stop()
            raise SystemExit("server did not start:\n" + "\n".join(self.lines))

    def vm(self, field: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)

    def connect(self) -> socket.socket:
        assert self.port is not None
        return socket.create_connection(("127.0.0.1", self.port), timeout=120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    head, body = read_head(sock)
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    return head, body


def warm_up(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n"
                     + b"w" * 300_000)
        read_response(sock)
        sock.sendall(b"GET /download?size=300000 HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)


def run_upload(size: int) -> dict[str, Any]:
    server = Server()
    try:
        warm_up(server)
        before = server.vm("VmHWM")
        block = b"u" * MIB
        start = time.perf_counter()
        with server.connect() as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % size)
            left = size
            while left:
                n = min(left, MIB)
                sock.sendall(block[:n] if n < MIB else block)
                left -= n
            head, body = read_response(sock)
        elapsed = time.perf_counter() - start
        after = server.vm("VmHWM")
        result = json.loads(body)
        return {"scenario": "upload to a slow-reading app", "size": size,
                "status": head.split(b" ", 2)[1].decode(), "checked": result["bytes"],
                "ok": result["bytes"] == size, "messages": result["messages"],
                "before": before, "after": after, "rss_end": server.vm("VmRSS"),
                "seconds": elapsed}
    finally:
        server.stop()


def run_download(size: int) -> dict[str, Any]:
    server = Server()
    try:
        warm_up(server)
        before = server.vm("VmHWM")
        start = time.perf_counter()
        with server.connect() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            sock.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
            time.sleep(2.0)  # not reading at all for a while
            stalled = server.vm("VmHWM")
            head, rest = read_head(sock)
            received = len(rest)
            wrong = 0
            buf = bytearray(256 * 1024)
            while received < size:
                n = sock.recv_into(buf)
                if not n:
                    break
                offset = received % 256
                if buf[:n] != STREAM[offset:offset + n]:
                    wrong += 1
                received += n
                time.sleep(0.001)  # a slow reader
        elapsed = time.perf_counter() - start
        after = server.vm("VmHWM")
        return {"scenario": "download to a slow-reading client", "size": size,
                "status": head.split(b" ", 2)[1].decode(), "checked": received,
                "ok": received == size and not wrong, "before": before, "after": after,
                "stalled": stalled, "rss_end": server.vm("VmRSS"), "seconds": elapsed}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="bytes to move each way, in MiB (default 1024 = 1 GiB)")
    args = parser.parse_args()
    size = args.size_mib * MIB
    if not os.path.exists("/proc/self/status"):
        print("needs Linux /proc", file=sys.stderr)
        return 2
    print(f"# Betula peak RSS under flow control ({time.strftime('%Y-%m-%d')}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})")
    print(f"# transfer size {size / MIB:.0f} MiB each way; VmHWM = the server's peak RSS\n")
    print("| scenario | bytes checked | VmHWM before | VmHWM after | growth | time |")
    print("|---|---|---|---|---|---|")
    failed = False
    notes = []
    for run in (run_upload, run_download):
        r = run(size)
        growth = r["after"] - r["before"]
        failed |= not r["ok"] or r["status"] != "200"
        print(f"| {r['scenario']} | {r['checked']:,} {'ok' if r['ok'] else 'WRONG'} "
              f"| {r['before'] / MIB:.1f} MiB | {r['after'] / MIB:.1f} MiB "
              f"| {growth / MIB:+.1f} MiB | {r['seconds']:.1f} s |", flush=True)
        if "stalled" in r:
            notes.append(f"- download: VmHWM after 2 s of the client not reading: "
                         f"{r['stalled'] / MIB:.1f} MiB; VmRSS at the end "
                         f"{r['rss_end'] / MIB:.1f} MiB")
        else:
            notes.append(f"- upload: the app got the body in {r['messages']:,} http.request "
                         f"messages; VmRSS at the end {r['rss_end'] / MIB:.1f} MiB")
    print()
    print("\n".join(notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
