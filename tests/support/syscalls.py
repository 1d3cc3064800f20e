"""What a server's threads ask of the kernel: the system calls it makes (``strace`` attached
to the running server) and the state its threads and sockets are in (Linux /proc).

- ``Strace``: the calls of a running server, e.g. ``sendfile``, decoded with ``-yy`` (a
  socket shown with its addresses, a file with its path), so a test names the connection
  and the file a call was about.
- ``assert_sent_by_sendfile``: a file's bytes went out through sendfile calls.
- ``waiting_untimed``: a thread sleeps in a wait only another thread can end (a lock, an
  ``Event.wait()`` with no timeout), with its count of voluntary context switches.
- ``server_fd`` / ``watched_for_reading``: the server's descriptor for one of the test's
  connections, and whether its event loop still watches it for reading (epoll).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support.need import missing, program

# betula/protocols/http1.py FILE_CHUNK: after a sendfile call that found (or left) the
# socket's buffer full, the server sends one chunk of at most this size through the
# transport, to wait on the transport's backpressure; then it goes back to sendfile.
FALLBACK_CHUNK = 256 * 1024

_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())

_SENDFILE = re.compile(
    r"^(?P<pid>\d+) +sendfile\((?P<out>\d+)<(?P<sock>.*?)>, (?P<in>\d+)<(?P<path>.*?)>, "
    r"(?:\[(?P<offset>\d+)\](?: => \[\d+\])?|NULL), (?P<count>\d+)\) += (?P<result>-?\d+)"
    r"(?: (?P<errno>E[A-Z]+))?")
_PEER_PORT = re.compile(r"->.*:(\d+)\]$")


@dataclass(frozen=True, slots=True)
class Sendfile:
    """One sendfile(2) call as strace saw it return."""

    sock: str          # the socket as -yy shows it: "TCP:[local->peer]"
    path: str          # the file sent from
    offset: int        # where in the file the call started
    count: int         # the bytes it asked for
    result: int        # the bytes it sent; -1 on an error
    errno: str | None  # "EAGAIN": the socket's buffer was full

    @property
    def peer_port(self) -> int | None:
        match = _PEER_PORT.search(self.sock)
        return int(match.group(1)) if match else None


class Strace:
    """``strace -f -yy -e trace=SYSCALLS -p PID``: attached to a running server (every thread,
    and the ones it starts later), detached by ``stop()``. strace writes each call's line when
    the call returns; lines of one thread come in the order of its calls."""

    def __init__(self, pid: int, syscalls: Iterable[str]) -> None:
        self.pid = pid
        self.syscalls = tuple(syscalls)
        self.proc: subprocess.Popen[str] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="betula-strace-")
        self.out = os.path.join(self._dir.name, "trace")
        self._stderr: list[str] = []
        self._attached = False
        self._answered = threading.Event()

    def start(self, timeout: float = 10.0) -> Strace:
        strace = program("strace", "apt-get install strace")
        self.proc = subprocess.Popen(
            [strace, "-f", "-yy", "-e", "trace=" + ",".join(self.syscalls), "-o", self.out,
             "-p", str(self.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        # "Process N attached": from here on every call of the server is seen.
        if not self._answered.wait(timeout) or not self._attached:
            self.stop()
            text = "".join(self._stderr)
            if "Operation not permitted" in text:
                missing("permission to ptrace the server", "run as root or with CAP_SYS_PTRACE")
            raise AssertionError(f"strace did not attach to {self.pid}:\n{text}")
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            if " attached" in line:
                self._attached = True
                self._answered.set()
        self._answered.set()  # strace ended without attaching: start() says why

    def stop(self) -> None:
        """Detach from the server (it goes on running) and end strace."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    # -- what it saw ----------------------------------------------------------------------
    def lines(self) -> list[str]:
        """The calls so far, one line each (a call another thread's call interrupted in the
        trace, "<unfinished ...>" then "<... resumed>", joined back into one line)."""
        try:
            with open(self.out, encoding="utf-8", errors="replace") as fh:
                raw = fh.read().splitlines()
        except FileNotFoundError:
            return []
        pending: dict[str, str] = {}
        lines = []
        for line in raw:
            pid, _, rest = line.partition(" ")
            if rest.endswith("<unfinished ...>"):
                pending[pid] = line[:-len("<unfinished ...>")].rstrip()
                continue
            resumed = re.match(r"\s*<\.\.\. \w+ resumed>(.*)", rest)
            if resumed and pid in pending:
                line = pending.pop(pid) + resumed.group(1)
            lines.append(line)
        return lines

    def sendfiles(self) -> list[Sendfile]:
        calls = []
        for line in self.lines():
            match = _SENDFILE.match(line)
            if match:
                calls.append(Sendfile(match["sock"], match["path"], int(match["offset"] or 0),
                                      int(match["count"]), int(match["result"]),
                                      match["errno"]))
        return calls

    def sendfiles_on(self, port: int, serve_marker: Callable[[str], None], marker_dir: Path,
                     timeout: float = 10.0) -> list[Sendfile]:
        """Every sendfile call on the server's end of the connection from ``port`` so far.

        ``serve_marker(path)`` has the server open a fresh one-byte file on another
        connection (pathsend, file_wrapper), and the ``openat`` of it (traced too) is awaited.
        A traced thread stops at each traced call's return until strace has written its
        line, so the event loop takes that next request only after the earlier calls' lines
        are written; the marker's own line comes after them, whichever thread opens it."""
        assert "openat" in self.syscalls, "trace openat too: sendfiles_on waits for one"
        marker = str(marker_dir / f"marker-{uuid.uuid4().hex[:12]}")
        with open(marker, "wb") as fh:
            fh.write(b"m")
        serve_marker(marker)
        opened = re.compile(r"^\d+ +openat\(.*, " + re.escape(f'"{marker}"'))
        deadline = time.monotonic() + timeout
        while not any(opened.match(line) for line in self.lines()):
            assert time.monotonic() < deadline, (
                f"strace saw no openat of {marker}:\n" + "\n".join(self.lines()[-20:]))
            time.sleep(0.02)
        return [call for call in self.sendfiles() if call.peer_port == port]


def assert_sent_by_sendfile(calls: list[Sendfile], path: str,
                            ranges: list[tuple[int, int]]) -> None:
    """The bytes of ``path`` in ``ranges`` ((offset, count) each, in the order sent) went out
    through sendfile: each range's first call starts at its offset, every call stays inside a
    range, and the bytes sendfile sent fall short of the whole only by the fallback chunks the
    server may send after each call that found the socket's buffer full (a partial send or
    EAGAIN)."""
    mine = [c for c in calls if c.path == str(path)]
    shown = "\n".join(map(str, calls[:40]))
    assert mine, f"no sendfile call sent {path}; calls seen:\n{shown}"
    total = sum(count for _, count in ranges)
    sent = sum(c.result for c in mine if c.result > 0)
    full = sum(1 for c in mine if c.result < c.count)
    assert total - full * FALLBACK_CHUNK <= sent <= total, (
        f"sendfile sent {sent} of {total} bytes ({full} calls found the buffer full):\n{shown}")
    starts = {c.offset for c in mine}
    for offset, _ in ranges:
        assert offset in starts, f"no sendfile call starts at {offset}:\n{shown}"
    for c in mine:
        assert any(offset <= c.offset and c.offset + max(c.result, 0) <= offset + count
                   for offset, count in ranges), f"a call outside {ranges}: {c}"


# -- threads ---------------------------------------------------------------------------------
def waiting_untimed(pid: int, tid: int) -> int | None:
    """When thread ``tid`` of ``pid`` sleeps in a futex wait with no timeout (a lock, an
    ``Event.wait()`` without a timeout; not the GIL, whose waits are timed): its count of
    voluntary context switches, which moves each time it wakes. Else None."""
    if _FUTEX is None:
        missing(f"the futex syscall number on {platform.machine()}", "x86_64 or aarch64")
    base = f"/proc/{pid}/task/{tid}"
    try:
        with open(base + "/syscall") as fh:
            fields = fh.read().split()
        with open(base + "/status") as fh:
            status = fh.read()
    except PermissionError:  # /proc/PID/task/TID/syscall asks for ptrace rights
        missing(f"permission to read {base}/syscall", "run as root or with CAP_SYS_PTRACE")
    except OSError:  # the thread is gone
        return None
    # "NR arg1 .. arg6 sp pc"; futex(uaddr, op, val, timeout, ...): the 4th argument
    if len(fields) < 5 or fields[0] != str(_FUTEX) or int(fields[4], 16) != 0:
        return None
    match = re.search(r"^voluntary_ctxt_switches:\s*(\d+)", status, re.M)
    return int(match.group(1)) if match else None


# -- sockets ---------------------------------------------------------------------------------
def _inode(local_port: int, peer_port: int) -> int | None:
    """The inode of the TCP socket with this local and peer port (this network namespace)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port \
                    and int(fields[2].rsplit(":", 1)[1], 16) == peer_port:
                return int(fields[9])
    return None


def server_fd(pid: int, client: socket.socket) -> int | None:
    """The descriptor, in server process ``pid``, of the other end of ``client``."""
    peer_port = client.getpeername()[1]
    inode = _inode(peer_port, client.getsockname()[1])
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == target:
                return int(name)
        except OSError:
            continue
    return None


def watched_for_reading(pid: int, fd: int) -> bool:
    """Some epoll instance of ``pid`` watches ``fd`` for input (EPOLLIN). An event loop that
    stopped reading a connection (asyncio: at once; libuv/uvloop: when the next input
    arrives) no longer has it there, so False means the server is not reading it."""
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{name}") as fh:
                info = fh.read()
        except OSError:
            continue
        for match in re.finditer(r"^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)", info, re.M):
            if int(match.group(1)) == fd and int(match.group(2), 16) & 0x1:
                return True
    return False
