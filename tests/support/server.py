"""The real ``betula`` CLI in a subprocess, its log captured line by line."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LISTEN_RE = re.compile(r"Listening on (\S+)")


class ServerProcess:
    """A running ``python -m betula`` with its combined log captured line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, command: list[str] | None = None,
                 new_session: bool = False) -> None:
        """``command``: what runs ``args`` instead of ``python -m betula`` (the console
        script, or a launcher that execs betula as systemd does); ``new_session``: start it
        in a session (and process group) of its own, as a terminal's job is."""
        self.args = args
        self.command = command or [sys.executable, "-m", "betula"]
        self.new_session = new_session
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.env = full_env
        self.cwd = str(cwd or ROOT)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._pump_thread: threading.Thread | None = None
        self._eof = False  # the pump has read the whole output (every writer closed it)
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.returncode: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, wait: bool = True, timeout: float = 20.0, pass_fds: tuple[int, ...] = ()
              ) -> ServerProcess:
        self.proc = subprocess.Popen(
            [*self.command, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=self.env, cwd=self.cwd, pass_fds=pass_fds,
            start_new_session=self.new_session,
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _drain(self, timeout: float = 10.0) -> None:
        """Once the process has exited: wait for the pump to read the output to its end
        (EOF, when every process holding the pipe has closed it), so a check that a line is
        absent sees every line. ``timeout`` is a hang guard for a leftover process (an
        orphaned worker) that keeps the pipe open; whatever the server wrote before it
        exited has been read by then."""
        if self._pump_thread is not None:
            self._pump_thread.join(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        line = self.wait_for_log(r"serving", timeout)
        if line is None:
            raise RuntimeError("server did not start:\n" + self.log)
        for text in self.lines:
            match = LISTEN_RE.search(text)
            if match:
                self.url = match.group(1)
                if self.url.startswith(("http://", "https://")):
                    hostport = self.url.split("://", 1)[1]
                    host, _, port = hostport.rpartition(":")
                    self.host = host.strip("[]")
                    self.port = int(port)
                break

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str | None:
        """Wait until a log line matches ``pattern``; None if the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self._eof:  # the output has ended: no line can come any more
                    return None
                self._cond.wait(remaining)  # woken by every line and by the end of output

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self._drain()
        return self.returncode

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("server did not exit in time:\n" + self.log) from None
        self._drain()
        return self.returncode

    # -- clients ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self.url is not None
        return self.url

    def connect(self, timeout: float = 10.0) -> socket.socket:
        assert self.host is not None and self.port is not None
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock


def betula(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
           ) -> ServerProcess:
    """A not-yet-started server; add ``--port 0`` yourself or use the ``serve`` fixture."""
    return ServerProcess(list(args), env=env, cwd=cwd)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0,
            pass_fds: tuple[int, ...] = (), cwd: str | Path | None = None) -> tuple[int, str]:
    """Run ``python -m betula ARGS`` to completion (for invocations that must exit).

    The inherited environment loses its BETULA_* variables so each test sets its own.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BETULA_")}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run([sys.executable, "-m", "betula", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                              check=False, env=full_env, cwd=str(cwd or ROOT), timeout=timeout,
                              pass_fds=pass_fds)
    except subprocess.TimeoutExpired as exc:
        out = exc.output or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise AssertionError(f"betula {' '.join(args)} did not exit; output:\n{out}") from None
    return proc.returncode, proc.stdout


def one_error_line(output: str) -> str:
    """The output is exactly one non-empty line and no traceback; return that line."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{output}"
    return lines[0]


