#!/usr/bin/env python3
"""Benchmark Betula against peer servers with wrk.

Usage (from anywhere):
    python bench/run.py [--duration 10] [--warmup 3] [--connections 64]
                        [--servers betula,uvicorn,granian | --wsgi]
                        [--scenarios hello,64k,post4k] [--venv bench/.venv-peers]

Servers: ASGI betula, uvicorn, granian (the default list); WSGI betula-wsgi,
granian-wsgi, gunicorn-gthread (`--wsgi` is short for
`--servers betula-wsgi,granian-wsgi,gunicorn-gthread`).  Ratios pair each
Betula entry with the peers of its interface.  BENCH_BETULA_ARGS (shell
words) is appended to Betula's command line, e.g.
`BENCH_BETULA_ARGS="--threads 4" python bench/run.py --wsgi`.

For each server: start it serving bench.app_asgi:app (ASGI) or
bench.app_wsgi:app (WSGI) on 127.0.0.1:<free port> with one worker, pinned to
one CPU (taskset -c 1); wait until it answers HTTP; check each scenario
returns the right body; warm up with wrk; then run each scenario with
`taskset -c 0 wrk -t1 -c64 -dNs --latency` and stop the server (SIGINT to
its process group, SIGKILL after a grace period).

Peers (uvicorn, granian, gunicorn) live in a throwaway venv (default
bench/.venv-peers, created and populated on first use), never in Betula's own
dependencies.  Results go to stdout (markdown) and bench/results/latest.{json,md}.

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_VENV = BENCH_DIR / ".venv-peers"
HOST = "127.0.0.1"

# Installed into the peers venv, never into Betula's dependencies.
PEER_PACKAGES = ["uvicorn[standard]", "httptools", "uvloop", "granian", "gunicorn", "wsproto",
                 "fastapi", "starlette", "flask", "django", "hypercorn"]

# App target per interface: the same routes and bodies in both.
APP_TARGETS = {
    "asgi": "bench.app_asgi:app",
    "wsgi": "bench.app_wsgi:app",
}

# Default server lists: `--servers` (ASGI) and the `--wsgi` shortcut.
ASGI_SERVERS = "betula,uvicorn,granian"
WSGI_SERVERS = "betula-wsgi,granian-wsgi,gunicorn-gthread"

# Extra arguments appended to every Betula command line (shell-split), e.g.
# BENCH_BETULA_ARGS="--threads 4" to sweep a setting without editing this file.
BETULA_ARGS_ENV = "BENCH_BETULA_ARGS"

START_TIMEOUT_S = 30.0  # max wait for a server to answer HTTP
STOP_GRACE_S = 5.0  # SIGINT -> SIGKILL delay
HTTP_CHECK_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One server under test.

    argv(venv, port, app_target) returns the command line (without taskset).
    family == "betula" marks the baseline; ratios are betula_rps / peer_rps
    computed between servers sharing the same interface.
    distribution: PyPI distribution whose version is reported (looked up in
    the peers venv).
    executable: the peers-venv bin/ entry that must exist (ensure_venv
    installs PEER_PACKAGES when one is missing); defaults to name.
    """

    name: str
    interface: str  # "asgi" | "wsgi"
    argv: Callable[[Path, int, str], list[str]]
    family: str = "peer"
    distribution: str | None = None
    needs_venv: bool = True
    executable: str | None = None
    cpus: str | None = None  # taskset CPU list overriding --server-cpu (multi-worker runs)
    tree: Path | None = None  # the checkout Betula runs from (--base: another one)


def _extra_betula_args() -> list[str]:
    return shlex.split(os.environ.get(BETULA_ARGS_ENV, ""))


def _betula_argv(venv: Path, port: int, app: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "betula",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *_extra_betula_args(),
    ]


def _betula_wsgi_argv(venv: Path, port: int, app: str) -> list[str]:
    # --interface wsgi explicitly (no auto-detection); --threads left at
    # Betula's default unless BENCH_BETULA_ARGS says otherwise.
    return [
        sys.executable,
        "-m",
        "betula",
        app,
        "--interface",
        "wsgi",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *_extra_betula_args(),
    ]


def _uvicorn_argv(venv: Path, port: int, app: str) -> list[str]:
    return [
        str(venv / "bin" / "uvicorn"),
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _granian_argv(venv: Path, port: int, app: str) -> list[str]:
    # Choices (checked against `granian --help`, granian 2.x):
    #  * --loop uvloop: same event loop as uvicorn (and Betula), so the
    #    comparison is about the server, not the loop.
    #  * --http 1: Betula and uvicorn speak HTTP/1.1 only; granian's default
    #    "auto" also sniffs for HTTP/2.  Pinning HTTP/1 gives granian its
    #    leanest, apples-to-apples path (the conservative choice for us).
    #  * websockets left at the default (enabled), as for uvicorn, which also
    #    keeps its websocket support on; no scenario uses them.
    #  * threading left at granian's defaults (--runtime-threads 1,
    #    --runtime-mode auto, default blocking threads); one worker.
    #  * access log is already off by default; --no-access-log made explicit.
    return [
        str(venv / "bin" / "granian"),
        "--interface",
        "asgi",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        app,
    ]


def _granian_h2_argv(venv: Path, port: int, app: str) -> list[str]:
    argv = _granian_argv(venv, port, app)
    argv[argv.index("--http") + 1] = "2"
    return argv


def _granian_wsgi_argv(venv: Path, port: int, app: str) -> list[str]:
    # Choices (checked against `granian --help` and granian/server/common.py,
    # granian 2.x):
    #  * --interface wsgi, one worker, --http 1 (HTTP/1.1 only, as Betula and
    #    gunicorn; see _granian_argv).
    #  * --no-ws: websockets do not exist for WSGI; explicit for clarity.
    #  * blocking threads (the pool running the WSGI callable) left at
    #    granian's default for WSGI: backpressure // 2 = backlog(1024) //
    #    workers // 2 = 512, spawned on demand (idle timeout 30 s), so in
    #    practice about as many as there are concurrent requests (<= 64 here).
    #    --runtime-threads 1 and --runtime-mode auto also default.  No --loop:
    #    granian's WSGI path runs no asyncio loop.
    #  * access log is off by default; --no-access-log made explicit.
    # Known: after a loaded run granian 2.8 (WSGI) often ignores SIGINT for more
    # than STOP_GRACE_S, so Running.stop() SIGKILLs it; harmless to the numbers.
    return [
        str(venv / "bin" / "granian"),
        "--interface",
        "wsgi",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--http",
        "1",
        "--no-ws",
        "--no-access-log",
        "--log-level",
        "warning",
        app,
    ]


def _gunicorn_gthread_argv(venv: Path, port: int, app: str) -> list[str]:
    # gthread worker: one process, 16 threads (as the brief and Betula's own
    # default; gunicorn's default --threads is 1).
    # Keep-alive stays at gunicorn's default (2 s), long enough for wrk's
    # back-to-back requests.  No access log (gunicorn's default is none; the
    # explicit --access-logfile is omitted on purpose, "-" would turn it on).
    return [
        str(venv / "bin" / "gunicorn"),
        "-k",
        "gthread",
        "--threads",
        "16",
        "-w",
        "1",
        "-b",
        f"{HOST}:{port}",
        "--log-level",
        "warning",
        app,
    ]


SERVERS: dict[str, Server] = {
    s.name: s
    for s in [
        Server("betula", "asgi", _betula_argv, family="betula", needs_venv=False),
        Server("uvicorn", "asgi", _uvicorn_argv, distribution="uvicorn"),
        Server("granian", "asgi", _granian_argv, distribution="granian"),
        # HTTP/2 peers (the h2-* scenarios, h2c by prior knowledge): granian with its HTTP/2
        # stack only (its default "auto" answers HTTP/1.1 too; --http 2 is its h2 mode),
        # and hypercorn (h2 on the h2 library, as Betula).
        Server("granian-h2", "asgi", _granian_h2_argv, distribution="granian",
               executable="granian"),
        Server("hypercorn", "asgi", lambda v, p, a: [
            str(v / "bin" / "hypercorn"), "--bind", f"{HOST}:{p}", "--workers", "1",
            "--worker-class", "uvloop", "--log-level", "warning", a],
            distribution="hypercorn"),
        # The framing libraries compared on the echo benchmark inside one server: uvicorn's
        # default WebSocket stack is websockets' sans-I/O protocol (as Betula's); this one
        # runs the same uvicorn on wsproto.
        Server("uvicorn-wsproto", "asgi",
               lambda v, p, a: [*_uvicorn_argv(v, p, a), "--ws", "wsproto"],
               distribution="uvicorn", executable="uvicorn"),
        Server("betula-wsgi", "wsgi", _betula_wsgi_argv, family="betula", needs_venv=False),
        # Issue 4's measure: two workers on both CPUs (wrk shares CPU 0) against one worker;
        # the table's betula/betula-2w ratio is one worker's share of two.
        Server("betula-2w", "asgi", lambda v, p, a: [*_betula_argv(v, p, a), "--workers", "2"],
               needs_venv=False, cpus="0,1"),
        Server(
            "granian-wsgi", "wsgi", _granian_wsgi_argv, distribution="granian",
            executable="granian",
        ),
        Server(
            "gunicorn-gthread", "wsgi", _gunicorn_gthread_argv, distribution="gunicorn",
            executable="gunicorn",
        ),
    ]
}


def add_base_servers(tree: Path) -> list[str]:
    """``--base TREE``: betula-base and betula-wsgi-base, the same commands run from another
    checkout (e.g. a ``git worktree`` of the commit before a change), so before, after and
    the peers share one run. Returns the names added."""
    SERVERS["betula-base"] = Server("betula-base", "asgi", _betula_argv, family="base",
                                    needs_venv=False, tree=tree)
    SERVERS["betula-wsgi-base"] = Server("betula-wsgi-base", "wsgi", _betula_wsgi_argv,
                                         family="base", needs_venv=False, tree=tree)
    return ["betula-base", "betula-wsgi-base"]


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

POST_BODY = b"x" * 4096  # must match bench/post4k.lua
HELLO_BODY = b"Hello, world!"
BIG_BODY = b"x" * 65536
STREAM_BODY = b"data: {\"token\": \"lorem\"}\n\n" * 200  # bench/frameworks_*.py


def _json_items(body: bytes) -> bool:
    """The framework routes' answer to a request without a query."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return data.get("page") == 0 and data.get("q") == "" and len(data.get("items", ())) == 5


WS_MESSAGE = bytes(ord("a") + i % 26 for i in range(1024))  # what bench/wsload.c sends
WSLOAD_SRC = BENCH_DIR / "wsload.c"
WSLOAD_BIN = BENCH_DIR / ".build" / "wsload"

# name, path, lua script (relative to bench/ or None), plus a correctness
# check (method, request body, expected response body) run before wrk.
SCENARIOS: dict[str, dict] = {
    s["name"]: s
    for s in [
        {
            "name": "hello",
            "path": "/",
            "lua": None,
            "check": ("GET", None, HELLO_BODY),
            "interfaces": ("asgi", "wsgi"),
        },
        {
            "name": "64k",
            "path": "/64k",
            "lua": None,
            "check": ("GET", None, BIG_BODY),
            "interfaces": ("asgi", "wsgi"),
        },
        {
            # WebSocket echo of 1 KiB text messages (issue 5), driven by bench/wsload.c:
            # "req/s" is messages/s and p99 the round trip of one message.
            "name": "wsecho",
            "path": "/ws",
            "tool": "wsload",
            "check": ("WS", WS_MESSAGE, WS_MESSAGE),
            "interfaces": ("asgi",),
        },
        {
            # The same echo with permessage-deflate, offered as browsers offer it (context
            # takeover both ways), on JSON-like messages that change every time (wsload.c's
            # "deflate" mode): what a chat or a dashboard costs. Also reports the server's
            # CPU per message (zlib is most of it, for every server).
            "name": "wsecho-deflate",
            "path": "/ws",
            "tool": "wsload",
            "deflate": True,
            "check": ("WS", WS_MESSAGE, WS_MESSAGE),
            "interfaces": ("asgi",),
        },
        {
            # Browser-like GETs whose heads never repeat (bench/unique.lua: new query,
            # cookie and request id per request, 9 fields): no cache of heads helps here.
            "name": "unique",
            "path": "/",
            "lua": "unique.lua",
            "check": ("GET", None, HELLO_BODY),
            "interfaces": ("asgi", "wsgi"),
        },
        # Framework apps (bench/frameworks_asgi.py, frameworks_wsgi.py) on the unique heads:
        # what users run, on traffic whose heads never repeat.
        {
            "name": "fastapi",
            "path": "/fastapi",
            "lua": "unique.lua",
            "check": ("GET", None, _json_items),
            "interfaces": ("asgi",),
        },
        {
            "name": "starlette",
            "path": "/starlette",
            "lua": "unique.lua",
            "check": ("GET", None, _json_items),
            "interfaces": ("asgi",),
        },
        {
            "name": "flask",
            "path": "/flask",
            "lua": "unique.lua",
            "check": ("GET", None, _json_items),
            "interfaces": ("wsgi",),
        },
        {
            "name": "django",
            "path": "/django",
            "lua": "unique.lua",
            "check": ("GET", None, _json_items),
            "interfaces": ("wsgi",),
        },
        # Streaming (SSE feeds, token streams): 200 small events a response, 32 responses
        # at once; p99 shows whether some streams starve while others run.
        {
            "name": "stream",
            "path": "/stream",
            "lua": None,
            "connections": 32,
            "check": ("GET", None, STREAM_BODY),
            "interfaces": ("asgi", "wsgi"),
        },
        {
            "name": "sse-starlette",
            "path": "/starlette-stream",
            "lua": None,
            "connections": 32,
            "check": ("GET", None, STREAM_BODY),
            "interfaces": ("asgi",),
        },
        # HTTP/2 in the clear by prior knowledge (issue 15), driven by h2load (nghttp2-client):
        # 64 connections x 10 concurrent streams; p99 from h2load's per-request log.
        {
            "name": "h2-hello",
            "path": "/",
            "tool": "h2load",
            "check": ("H2", None, HELLO_BODY),
            "interfaces": ("asgi",),
        },
        {
            "name": "h2-64k",
            "path": "/64k",
            "tool": "h2load",
            "check": ("H2", None, BIG_BODY),
            "interfaces": ("asgi",),
        },
        {
            "name": "h2-post4k",
            "path": "/echo",
            "tool": "h2load",
            "post": POST_BODY,
            "check": ("H2", POST_BODY, POST_BODY),
            "interfaces": ("asgi",),
        },
        {
            "name": "post4k",
            "path": "/echo",
            "lua": "post4k.lua",
            "check": ("POST", POST_BODY, POST_BODY),
            "interfaces": ("asgi", "wsgi"),
        },
    ]
}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_request(port: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_CHECK_TIMEOUT_S)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ensure_venv(venv: Path, servers: list[Server]) -> None:
    """Create the peers venv and install PEER_PACKAGES if a needed tool is missing or the
    package list changed since the last install (a marker file in the venv keeps it)."""
    needed = [s for s in servers if s.needs_venv]
    if not needed:
        return
    missing = [
        s.name for s in needed if not (venv / "bin" / (s.executable or s.name)).exists()
    ]
    marker = venv / "betula-bench-packages.txt"
    wanted = "\n".join(PEER_PACKAGES)
    if not missing and marker.exists() and marker.read_text() == wanted:
        return
    if not (venv / "bin" / "python").exists():
        log(f"creating peers venv at {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing peers into {venv}: {' '.join(PEER_PACKAGES)}")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PEER_PACKAGES],
        check=True,
    )
    marker.write_text(wanted)


def _capture(cmd: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    """Run cmd, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def dist_version(python: str, dist: str) -> str | None:
    try:
        out = _capture(
            [
                python,
                "-c",
                "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))",
                dist,
            ],
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def betula_version(tree: Path = REPO_ROOT) -> str:
    parts = []
    try:
        git = ["git", "-C", str(tree)]
        sha = _capture([*git, "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = _capture([*git, "status", "--porcelain", "--", "betula"]).stdout.strip()
        if sha:
            parts.append(f"git {sha}{'+dirty' if dirty else ''}")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return " ".join(parts) or "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version() -> str:
    try:
        out = _capture(["wrk", "-v"])
        return (out.stdout + out.stderr).splitlines()[0].split(" Copyright")[0].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


# --------------------------------------------------------------------------
# Server lifecycle
# --------------------------------------------------------------------------


class Running:
    """A started server process (in its own process group) plus its log file."""

    def __init__(self, server: Server, argv: list[str], port: int, cpu: int):
        self.server = server
        self.port = port
        # Closed in stop(); kept on disk when the server misbehaves.
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"bench-{server.name}-", suffix=".log", delete=False
        )
        env = dict(os.environ)
        tree = server.tree or REPO_ROOT
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.cmd = ["taskset", "-c", str(cpu), *argv]
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes (its process group: the master
        and its workers) have used so far."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # (a process that just ended)
            if int(fields[2]) == self.proc.pid:  # pgrp; utime and stime follow at 11, 12
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, n: int = 15) -> str:
        try:
            self.logfile.flush()
            lines = Path(self.logfile.name).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> str | None:
        """Return None when GET / answers, else an error string."""
        deadline = time.monotonic() + timeout
        last_err = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return f"exited with code {rc} before answering"
            try:
                if self.server.name.endswith("-h2"):  # HTTP/2 only: an h2 request answers
                    parsed, text = run_h2load(self.port, "/", 5, 1, 0, requests=1)
                    if parsed is None or parsed["non_2xx"]:
                        raise OSError(text.strip()[-200:])
                else:
                    http_request(self.port, "GET", "/", None)
                return None
            except (OSError, http.client.HTTPException) as exc:
                last_err = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        return f"did not answer on port {self.port} within {timeout:.0f}s ({last_err})"

    def stop(self) -> None:
        """SIGINT the process group, SIGKILL it after STOP_GRACE_S."""
        pgid = self.proc.pid  # start_new_session=True: pgid == pid
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log(f"{self.server.name}: still running {STOP_GRACE_S:.0f}s after SIGINT, SIGKILL")
        # Kill any leftover members of the group (e.g. worker processes), then reap.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log(f"{self.server.name}: pid {self.proc.pid} did not die after SIGKILL")
        self.logfile.close()

    def cleanup_log(self) -> None:
        try:
            os.unlink(self.logfile.name)
        except OSError:
            pass


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_LAT_RE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQS_RE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKERR_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_AVG_RE = re.compile(r"^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s", re.MULTILINE)


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(output: str) -> dict:
    """Parse `wrk --latency` output into numbers (latencies in ms)."""
    res: dict = {}
    m = _RPS_RE.search(output)
    res["rps"] = float(m.group(1)) if m else None
    lat = {p: to_ms(v, u) for p, v, u in _LAT_RE.findall(output)}
    res["p50_ms"] = lat.get("50")
    res["p90_ms"] = lat.get("90")
    res["p99_ms"] = lat.get("99")
    m = _AVG_RE.search(output)
    res["avg_ms"] = to_ms(m.group(1), m.group(2)) if m else None
    m = _REQS_RE.search(output)
    res["requests"] = int(m.group(1)) if m else None
    m = _SOCKERR_RE.search(output)
    # wrk only prints this line when there were errors.
    res["socket_errors"] = dict(
        zip(("connect", "read", "write", "timeout"),
            map(int, m.groups()) if m else (0, 0, 0, 0), strict=True)
    )
    m = _NON2XX_RE.search(output)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


def run_wrk(
    url: str, duration: int, connections: int, cpu: int, lua: str | None
) -> tuple[dict | None, str]:
    cmd = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
    ]
    if lua:
        cmd += ["-s", str(BENCH_DIR / lua)]
    cmd.append(url)
    try:
        out = _capture(cmd, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return None, "wrk timed out"
    text = out.stdout + out.stderr
    if out.returncode != 0:
        return None, f"wrk exited {out.returncode}: {text.strip()[-500:]}"
    parsed = parse_wrk(text)
    if parsed["rps"] is None or parsed["p99_ms"] is None:
        return None, f"could not parse wrk output: {text.strip()[-500:]}"
    return parsed, text


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def ws_echo_check(port: int, message: bytes) -> bytes:
    """One text message through a WebSocket echo (raw socket: standard library only)."""
    with socket.create_connection((HOST, port), timeout=HTTP_CHECK_TIMEOUT_S) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError(f"handshake answered {head.splitlines()[0]!r}")
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
        sock.sendall(bytes([0x81, 0x80 | 126]) + len(message).to_bytes(2, "big") + mask + masked)
        while len(data) < 4 + len(message):
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed before the echo")
            data += chunk
        return data[4:4 + len(message)]


def ensure_wsload() -> Path:
    """Build bench/wsload.c (gcc -O2) when the binary is missing or older than its source."""
    if not WSLOAD_BIN.exists() or WSLOAD_BIN.stat().st_mtime < WSLOAD_SRC.stat().st_mtime:
        WSLOAD_BIN.parent.mkdir(exist_ok=True)
        log(f"building {WSLOAD_BIN.relative_to(REPO_ROOT)}")
        subprocess.run(["gcc", "-O2", "-o", str(WSLOAD_BIN), str(WSLOAD_SRC), "-lz"],
                       check=True)
    return WSLOAD_BIN


_WSLOAD_RE = re.compile(r"messages=(\d+) seconds=([\d.]+) rate=([\d.]+) p50_us=(-?\d+) "
                        r"p99_us=(-?\d+) errors=(\d+)")


def run_wsload(port: int, path: str, duration: int, connections: int,
               cpu: int, deflate: bool = False, streams: int = 0) -> tuple[dict | None, str]:
    """bench/wsload.c's echo: over HTTP/1.1, or with ``streams`` WebSocket streams on each
    of the ``connections`` over h2c (RFC 8441)."""
    cmd = ["taskset", "-c", str(cpu), str(ensure_wsload()), HOST, str(port), path,
           str(connections), str(duration), str(len(WS_MESSAGE))] + \
        (["deflate"] if deflate else []) + ([f"h2={streams}"] if streams else [])
    try:
        out = _capture(cmd, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return None, "wsload timed out"
    text = out.stdout + out.stderr
    m = _WSLOAD_RE.search(text)
    if out.returncode != 0 or not m:
        return None, f"wsload exited {out.returncode}: {text.strip()[-500:]}"
    errors = int(m.group(6))
    return {
        "rps": float(m.group(3)), "requests": int(m.group(1)),
        "p50_ms": int(m.group(4)) / 1000, "p99_ms": int(m.group(5)) / 1000,
        "p90_ms": None, "avg_ms": None, "non_2xx": 0,
        "socket_errors": {"connect": 0, "read": errors, "write": 0, "timeout": 0},
    }, text


H2_STREAMS = 10  # concurrent streams per connection (h2load -m)


def run_h2load(port: int, path: str, duration: int, connections: int, cpu: int,
               body: bytes | None = None, requests: int | None = None) -> tuple[dict | None, str]:
    """h2load over h2c (prior knowledge): req/s, and p50/p99 from its per-request log."""
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "requests.log"
        cmd = ["taskset", "-c", str(cpu), "h2load", f"-c{connections}", f"-m{H2_STREAMS}",
               "-t1", f"--log-file={log_file}"]
        if requests is not None:
            cmd += ["-n", str(requests)]
        else:
            cmd += ["-D", str(duration)]
        if body is not None:
            data = Path(tmp) / "body"
            data.write_bytes(body)
            cmd += ["-d", str(data)]
        cmd.append(f"http://{HOST}:{port}{path}")
        try:
            out = _capture(cmd, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            return None, "h2load timed out"
        text = out.stdout + out.stderr
        m = re.search(r"finished in ([\d.]+)[mu]?s, ([\d.]+) req/s", text)
        done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored", text)
        codes = re.search(r"status codes: (\d+) 2xx", text)
        if out.returncode != 0 or not m or not done:
            return None, f"h2load exited {out.returncode}: {text.strip()[-500:]}"
        times = sorted(int(line.split()[2]) for line in log_file.read_text().splitlines()
                       if len(line.split()) >= 3)
    if not times:
        return None, f"h2load logged no request: {text.strip()[-300:]}"
    ok = int(codes.group(1)) if codes else 0
    succeeded = int(done.group(3))
    return {
        "rps": float(m.group(2)), "requests": succeeded,
        "p50_ms": times[len(times) // 2] / 1000, "p99_ms": times[int(len(times) * 0.99)] / 1000,
        "p90_ms": times[int(len(times) * 0.9)] / 1000, "avg_ms": None,
        "non_2xx": max(0, succeeded - ok),  # (-D: 2xx counts streams cut at the end too)
        "socket_errors": {"connect": 0, "read": int(done.group(4)) + int(done.group(5)),
                          "write": 0, "timeout": 0},
    }, text


def check_h2(port: int, scen: dict) -> str | None:
    """One request over h2c (h2load -n1): a 2xx, and the body's size as expected."""
    _method, body, expected = scen["check"]
    parsed, text = run_h2load(port, scen["path"], 10, 1, 0, body, requests=1)
    if parsed is None:
        return text
    if parsed["non_2xx"] or parsed["requests"] != 1:
        return f"h2load: not one 2xx answer: {text.strip()[-300:]}"
    size = re.search(r"traffic: .*?(\d+) \(\d+\) data", text)
    if size and int(size.group(1)) != len(expected):
        return f"h2 body of {size.group(1)} bytes, expected {len(expected)}"
    return None


def check_scenario(port: int, scen: dict) -> str | None:
    method, body, expected = scen["check"]
    if method == "H2":
        return check_h2(port, scen)
    if method == "WS":
        try:
            got = ws_echo_check(port, body)
        except OSError as exc:
            return f"WebSocket echo on {scen['path']} failed: {type(exc).__name__}: {exc}"
        return None if got == expected else f"WebSocket echo returned {got[:40]!r}"
    try:
        status, got = http_request(port, method, scen["path"], body)
    except (OSError, http.client.HTTPException) as exc:
        return f"{method} {scen['path']} failed: {type(exc).__name__}: {exc}"
    if status != 200:
        return f"{method} {scen['path']} -> status {status}"
    if callable(expected):
        if not expected(got):
            return f"{method} {scen['path']} -> unexpected body {got[:80]!r}"
        return None
    if got != expected:
        return f"{method} {scen['path']} -> wrong body ({len(got)} bytes, expected {len(expected)})"
    return None


def bench_server(server: Server, scenarios: list[dict], args, versions: dict) -> dict:
    """Start, check, warm up, measure, stop one server. Returns its record."""
    record: dict = {
        "server": server.name,
        "interface": server.interface,
        "version": versions.get(server.name),
        "status": "ok",
        "error": None,
        "results": {},
    }
    app = APP_TARGETS[server.interface]
    port = free_port()
    argv = server.argv(args.venv, port, app)
    record["argv"] = argv
    log(f"{server.name}: starting on port {port}: {' '.join(argv)}")
    running: Running | None = None
    try:
        running = Running(server, argv, port, server.cpus or args.server_cpu)
        err = running.wait_ready()
        if err:
            tail = running.log_tail()
            record.update(status="failed", error=err + (f"\n{tail}" if tail else ""))
            log(f"{server.name}: FAILED to start: {err}")
            if tail:
                log("  log tail:\n    " + tail.replace("\n", "\n    "))
            return record

        url_base = f"http://{HOST}:{port}"
        if args.warmup > 0:
            log(f"{server.name}: warm-up {args.warmup}s")
            if any(s.get("tool") is None for s in scenarios):
                run_wrk(url_base + "/", args.warmup, args.connections, args.client_cpu, None)
            if any(s.get("tool") == "wsload" for s in scenarios):
                run_wsload(port, "/ws", args.warmup, args.connections, args.client_cpu)
            if any(s.get("tool") == "h2load" for s in scenarios):
                run_h2load(port, "/", args.warmup, args.connections, args.client_cpu)

        for scen in scenarios:
            if server.interface not in scen["interfaces"]:
                continue
            name = scen["name"]
            err = check_scenario(port, scen)
            if err:
                record["results"][name] = {"error": f"correctness check failed: {err}"}
                log(f"{server.name}/{name}: SKIPPED, correctness check failed: {err}")
                continue
            tool = scen.get("tool", "wrk")
            log(f"{server.name}/{name}: {tool} {args.duration}s "
                f"-c{scen.get('connections', args.connections)}")
            if tool == "wsload":
                cpu_before = running.cpu_seconds()
                parsed, text = run_wsload(port, scen["path"], args.duration, args.connections,
                                          args.client_cpu, scen.get("deflate", False))
                if parsed is not None and parsed["requests"]:
                    parsed["server_cpu_us"] = round(
                        (running.cpu_seconds() - cpu_before) / parsed["requests"] * 1e6, 1)
            elif tool == "h2load":
                parsed, text = run_h2load(port, scen["path"], args.duration, args.connections,
                                          args.client_cpu, scen.get("post"))
            else:
                parsed, text = run_wrk(
                    url_base + scen["path"],
                    args.duration,
                    scen.get("connections", args.connections),
                    args.client_cpu,
                    scen["lua"],
                )
            if parsed is None:
                record["results"][name] = {"error": text}
                log(f"{server.name}/{name}: wrk failed: {text}")
                continue
            if running.proc.poll() is not None:
                parsed["error"] = f"server exited (code {running.proc.returncode}) during run"
            record["results"][name] = parsed
            errs = parsed["socket_errors"] or {}
            log(
                f"{server.name}/{name}: {parsed['rps']:.0f} req/s, p99 {parsed['p99_ms']:.2f} ms"
                + (f", socket errors {errs}" if any(errs.values()) else "")
                + (f", non-2xx {parsed['non_2xx']}" if parsed["non_2xx"] else "")
            )
        if running.proc.poll() is not None:
            record["status"] = "crashed"
            record["error"] = (
                f"exited with code {running.proc.returncode} during the run\n" + running.log_tail()
            )
        return record
    except OSError as exc:  # e.g. executable missing
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log(f"{server.name}: FAILED to start: {exc}")
        return record
    finally:
        if running is not None:
            running.stop()
            if record["status"] == "ok":
                running.cleanup_log()
            else:
                log(f"{server.name}: server log kept at {running.logfile.name}")


def merge_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One record per server: per scenario the round with the median req/s (with its p99)."""
    merged = []
    for per_server in zip(*rounds, strict=True):
        record = dict(per_server[0])
        record["results"] = {}
        bad = [r for r in per_server if r["status"] != "ok"]
        if bad:
            record.update(status=bad[0]["status"], error=bad[0]["error"])
        names = {name for r in per_server for name in r["results"]}
        for name in names:
            runs = [r["results"][name] for r in per_server if name in r["results"]]
            good = sorted((x for x in runs if "rps" in x), key=lambda x: x["rps"])
            if not good:
                record["results"][name] = runs[0]
                continue
            chosen = dict(good[len(good) // 2])
            chosen["rounds_rps"] = [round(x["rps"]) for x in good]
            record["results"][name] = chosen
        merged.append(record)
    return merged


def compute_ratios(rounds: list[list[dict]], scenarios: list[dict]) -> dict:
    """{scenario: {"betula/uvicorn": ratio}}: Betula's req/s over the peer's *in the same
    round*, the median over rounds (pairs measured minutes apart would compare the machine's
    mood, not the servers)."""
    ratios: dict = {}
    for scen in scenarios:
        name = scen["name"]
        per_pair: dict[str, list[float]] = {}
        for records in rounds:
            for base in records:
                if SERVERS[base["server"]].family != "betula":
                    continue
                b = base["results"].get(name, {}).get("rps")
                for peer in records:
                    ps = SERVERS[peer["server"]]
                    if ps.family == "betula" or ps.interface != SERVERS[base["server"]].interface:
                        continue
                    p = peer["results"].get(name, {}).get("rps")
                    key = f"{base['server']}/{peer['server']}"
                    per_pair.setdefault(key, [])
                    if b and p:
                        per_pair[key].append(b / p)
        for key, values in per_pair.items():
            values.sort()
            ratios.setdefault(name, {})[key] = (
                round(values[len(values) // 2], 3) if values else None)
    return ratios


def fmt_num(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def render_markdown(meta: dict, records: list[dict], scenarios: list[dict], ratios: dict) -> str:
    lines = [
        "# Betula benchmark",
        "",
        f"- date: {meta['date']}",
        (
            f"- machine: `{meta['machine']}`, CPU: {meta['cpu_model']} "
            f"({meta['cpu_count']} logical CPUs)"
        ),
        f"- Python: {meta['python']}",
        (
            f"- wrk: {meta['wrk']}, `-t1 -c{meta['connections']} -d{meta['duration_s']}s "
            f"--latency` pinned to CPU {meta['client_cpu']}; server: 1 worker pinned to "
            f"CPU {meta['server_cpu']}; warm-up {meta['warmup_s']}s; "
            f"{meta.get('repeat', 1)} interleaved rounds, req/s and p99 of the median round"
        ),
        "- versions: " + ", ".join(f"{r['server']} {r['version'] or '?'}" for r in records),
    ]
    if any("connections" in scen for scen in scenarios):
        lines.append("- " + ", ".join(f"{scen['name']}: -c{scen['connections']}"
                                      for scen in scenarios if "connections" in scen)
                     + " (streaming scenarios)")
    if any(scen.get("tool") == "wsload" for scen in scenarios):
        lines.append(
            f"- wsecho: bench/wsload.c (C, epoll) pinned to CPU {meta['client_cpu']}, "
            f"{meta['connections']} WebSocket connections each sending a 1 KiB text message "
            "and waiting for its echo (no compression offered; wsecho-deflate: "
            "permessage-deflate, JSON-like messages that change each time); req/s is "
            "messages/s, p99 the round trip, the server's CPU per message in the notes")
    lines += [
        "",
        "| scenario | server | req/s | p99 ms |",
        "|---|---|---:|---:|",
    ]
    notes = []
    for scen in scenarios:
        for rec in records:
            name = scen["name"]
            if SERVERS[rec["server"]].interface not in scen["interfaces"]:
                continue
            res = rec["results"].get(name)
            if rec["status"] == "failed" or res is None:
                lines.append(f"| {name} | {rec['server']} | not run | not run |")
                continue
            if "rps" not in res:
                lines.append(f"| {name} | {rec['server']} | error | error |")
                notes.append(f"{rec['server']}/{name}: {res.get('error')}")
                continue
            flag = ""
            errs = res.get("socket_errors") or {}
            if any(errs.values()) or res.get("non_2xx") or res.get("error"):
                flag = " ⚠"
                notes.append(
                    f"{rec['server']}/{name}: socket errors {errs}, "
                    f"non-2xx {res.get('non_2xx')}"
                    + (f", {res['error']}" if res.get("error") else "")
                )
            lines.append(
                f"| {name} | {rec['server']} | {res['rps']:,.0f}{flag} | {res['p99_ms']:.2f} |"
            )
            if res.get("server_cpu_us") is not None:
                notes.append(f"{rec['server']}/{name}: server CPU {res['server_cpu_us']} µs "
                             "per message")
    pairs = list(dict.fromkeys(k for d in ratios.values() for k in d))  # server order
    if pairs:
        lines += [
            "",
            "Betula's throughput ratio (betula req/s ÷ peer req/s within one round, median "
            "over the rounds; >1 = Betula faster):",
            "",
            "| scenario | " + " | ".join(pairs) + " |",
            "|---|" + "---:|" * len(pairs),
        ]
        for scen in scenarios:
            d = ratios.get(scen["name"], {})
            lines.append(
                f"| {scen['name']} | " + " | ".join(fmt_num(d.get(p), ".2f") for p in pairs) + " |"
            )
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Servers that failed:", ""]
        for r in failed:
            first = (r["error"] or "").splitlines()[0] if r["error"] else ""
            lines.append(f"- {r['server']} ({r['status']}): {first}")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per scenario (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up seconds per server (default 3)")
    p.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated, from: {','.join(SERVERS)} (default {ASGI_SERVERS})",
    )
    p.add_argument(
        "--wsgi",
        action="store_true",
        help=f"shortcut for --servers {WSGI_SERVERS}",
    )
    p.add_argument(
        "--scenarios",
        default="unique,fastapi,starlette,flask,django,stream,sse-starlette,hello,64k,post4k",
        help=f"comma-separated, from: {','.join(SCENARIOS)}",
    )
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--repeat", type=int, default=3,
                   help="interleaved rounds over the servers; the median is reported (default 3)")
    p.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help=f"peers venv (default {DEFAULT_VENV.relative_to(REPO_ROOT)})",
    )
    p.add_argument("--server-cpu", type=int, default=1, help="CPU the server is pinned to")
    p.add_argument("--client-cpu", type=int, default=0, help="CPU wrk is pinned to")
    p.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where latest.json / latest.md go"
    )
    p.add_argument("--base", type=Path, default=None,
                   help="another checkout (a git worktree of an older commit): adds servers "
                   "betula-base and betula-wsgi-base run from it, for before/after in one run")
    p.add_argument("--name", default=None,
                   help="results file name (default 'latest'; 'websocket' when only WebSocket "
                   "scenarios run, 'h2' when only HTTP/2 ones); the README's tables come "
                   "from latest.md and websocket.md")
    args = p.parse_args(argv)
    args.venv = args.venv.resolve()
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.repeat < 1:
        p.error("--duration >= 1, --warmup >= 0, --connections >= 1, --repeat >= 1")
    if args.wsgi and args.servers is not None:
        p.error("--wsgi and --servers are exclusive")
    if args.servers is None:
        args.servers = WSGI_SERVERS if args.wsgi else ASGI_SERVERS
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.base is not None:
        args.base = args.base.resolve()
        if not (args.base / "betula" / "__init__.py").exists():
            p.error(f"--base {args.base}: no betula package there")
        add_base_servers(args.base)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.server_list if s not in SERVERS]
    if unknown:
        p.error(f"unknown server(s) {unknown}; known: {list(SERVERS)}")
    unknown = [s for s in args.scenario_list if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    ncpu = os.cpu_count() or 1
    if max(args.server_cpu, args.client_cpu) >= ncpu or args.server_cpu == args.client_cpu:
        p.error(f"need distinct --server-cpu/--client-cpu below {ncpu} (this machine has {ncpu})")
    return args


def _terminate(signum, frame):
    # Turn SIGTERM/SIGHUP into an exception so the try/finally blocks stop the
    # server under test (Ctrl-C already raises KeyboardInterrupt).
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    for tool in ("wrk", "taskset"):
        if _capture(["sh", "-c", f"command -v {tool}"]).returncode:
            log(f"{tool} not found (apt-get install -y {'wrk' if tool == 'wrk' else 'util-linux'})")
            return 2
    servers = [SERVERS[n] for n in args.server_list]
    scenarios = [SCENARIOS[n] for n in args.scenario_list]
    ensure_venv(args.venv, servers)

    versions = {}
    for s in servers:
        if s.family == "betula":
            versions[s.name] = betula_version()
        elif s.tree is not None:
            versions[s.name] = betula_version(s.tree)
        elif s.distribution:
            versions[s.name] = dist_version(str(args.venv / "bin" / "python"), s.distribution)

    meta = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": wrk_version(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "peer_venv": str(args.venv),
    }

    # Rounds interleave the servers (A B C, A B C, ...) so a slow spell of this shared machine
    # hits every server alike; each scenario reports the median round.
    rounds = []
    for round_no in range(args.repeat):  # bounded: --repeat passes over the servers
        if args.repeat > 1:
            log(f"round {round_no + 1}/{args.repeat}")
        rounds.append([bench_server(server, scenarios, args, versions) for server in servers])
    records = merge_rounds(rounds)
    meta["repeat"] = args.repeat

    ratios = compute_ratios(rounds, scenarios)
    md = render_markdown(meta, records, scenarios, ratios)
    print(md)

    args.results_dir.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "servers": records, "ratios": ratios}
    # WebSocket scenarios alone (wsecho, wsecho-deflate) go to websocket.md, never over the
    # HTTP table in latest.md; HTTP/2 ones alone to h2.md.
    if args.name:
        name = args.name
    elif all(s.startswith("wsecho") for s in args.scenario_list):
        name = "websocket"
    elif all(s.startswith("h2-") for s in args.scenario_list):
        name = "h2"
    else:
        name = "latest"
    (args.results_dir / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results_dir / f"{name}.md").write_text(md)
    log(f"wrote {args.results_dir / (name + '.json')} and {args.results_dir / (name + '.md')}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        sys.exit(130)
