"""What a server's threads ask of the kernel: the system calls it makes (the server run under
``strace``) and the state its threads and sockets are in (Linux /proc).

- ``TracedServer`` / ``traced_server``: ``python -m betula ARGS`` started by
  ``strace -f -yy`` (the tracer is its parent, so no ptrace rights beyond the default Yama
  scope are needed), its ``sendfile`` calls decoded: the connection (a socket shown with
  its addresses) and the file (its path) of each call.
- ``TracedServer.stalled_download``: a response to a client that reads nothing until a
  sendfile call found the socket's buffer full, so the server's fallback and resume run.
- ``assert_sent_by_sendfile`` / ``assert_resumed``: a file's bytes went out through sendfile
  calls; sendfile went on after a call that found the buffer full.
- ``waiting_untimed``: a thread sleeps in a wait only another thread can end (a lock, an
  ``Event.wait()`` with no timeout), with its count of voluntary context switches.
- ``server_fd`` / ``watched_for_reading``: the server's descriptor for one of the test's
  connections, and whether its event loop still watches it for reading (epoll).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.need import missing, program
from tests.support.procs import children
from tests.support.server import ServerProcess
from tests.support.tcp import tcp_ends
from tests.support.wire import read_response, request

MIB = 1024 * 1024

# betula/protocols/h1/response.py FILE_CHUNK: after a sendfile call that found (or left) the
# socket's buffer full, the server sends one chunk of at most this size through the
# transport, to wait on the transport's backpressure; then it goes back to sendfile.
FALLBACK_CHUNK = 256 * 1024

# SO_RCVBUF a stalled download's client asks for (the kernel doubles it), so that the bytes
# the connection can hold are the server's send buffer plus little.
STALL_RCVBUF = 64 * 1024

_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())

_CALL = re.compile(r"^\d+ +sendfile\(")
_SENDFILE = re.compile(
    r"^(?P<pid>\d+) +sendfile\((?P<out>\d+)<(?P<sock>.*?)>, (?P<in>\d+)<(?P<path>.*?)>, "
    r"(?:\[(?P<offset>\d+)\](?: => \[\d+\])?|NULL), (?P<count>\d+)\) += (?P<result>-?\d+)"
    r"(?: (?P<errno>E[A-Z]+))?")
# A socket -yy decoded through sock_diag: "TCP:[127.0.0.1:8000->127.0.0.1:41234]" (TCPv6:
# "[::1]:8000->..."). Without sock_diag strace shows only "TCP:[INODE]", and no call could
# be told apart by its connection: every test asking "none on my connection?" would pass.
_DECODED = re.compile(r"^TCP(?:v6)?:\[.+:\d+->.+:(?P<peer>\d+)\]$")


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
    def peer_port(self) -> int:
        match = _DECODED.match(self.sock)
        assert match, f"an undecoded socket: {self.sock}"
        return int(match["peer"])

    @property
    def short(self) -> bool:
        """It found the socket's buffer full: sent less than asked (EAGAIN: nothing)."""
        return self.result < self.count


def parse_sendfiles(lines: list[str]) -> list[Sendfile]:
    """The sendfile calls among strace's lines; every one must show its socket's addresses
    and its file's path, else the trace cannot tell whose call it was (fails loudly)."""
    calls = []
    for line in lines:
        if not _CALL.match(line):
            continue
        match = _SENDFILE.match(line)
        assert match and _DECODED.match(match["sock"]), (
            "strace did not decode this sendfile call's socket and file (-yy shows a TCP "
            f"socket's addresses only with the kernel's sock_diag netlink):\n{line}")
        calls.append(Sendfile(match["sock"], match["path"], int(match["offset"] or 0),
                              int(match["count"]), int(match["result"]), match["errno"]))
    return calls


class TracedServer(ServerProcess):
    """``strace -f -yy -e trace=sendfile -o FILE python -m betula ARGS``: every thread of the
    server traced from its first instruction. strace writes each call's line when the call
    returns, and the thread stays stopped until it has; lines of one thread come in the
    order of its calls.

    ``file_target(path)`` is a request target that has the app send the file at ``path``
    through the server's sendfile path (pathsend, an unwrapped ``wsgi.file_wrapper``):
    ``sendfiles_on`` uses it to know when the trace holds every call made before.

    ``proc`` is strace; ``pid`` is the server itself, which signals go to (strace, given a
    program to run, blocks fatal signals and exits with the server's status).
    """

    def __init__(self, args: list[str], file_target: Callable[[str], str],
                 env: dict[str, str] | None = None, calls: str = "sendfile") -> None:
        """``calls``: the system calls traced (strace's ``trace=`` list)."""
        self._dir = tempfile.TemporaryDirectory(prefix="betula-strace-")
        self.trace_file = os.path.join(self._dir.name, "trace")
        strace = program("strace", "apt-get install strace")
        # --seccomp-bpf: only the traced call stops the server (not every system call); -qq
        # and signal=none: the trace holds calls only.
        super().__init__(args, env=env, command=[
            strace, "-f", "--seccomp-bpf", "-qq", "-yy", "-e", f"trace={calls}",
            "-e", "signal=none", "-o", self.trace_file, sys.executable, "-m", "betula"])
        self.file_target = file_target
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        """The server's pid (strace's one child)."""
        if self._pid is None:
            assert self.proc is not None
            kids = children(self.proc.pid)
            assert len(kids) == 1, f"strace runs {kids or 'no process'}, not one server:\n" \
                + self.log[-3000:]
            self._pid = kids.pop()
        return self._pid

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        return super().stop(sig, timeout)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    # -- what it saw ----------------------------------------------------------------------
    def trace_lines(self) -> list[str]:
        """The calls so far, one line each (a call another thread's call interrupted in the
        trace, "<unfinished ...>" then "<... resumed>", joined back into one line)."""
        try:
            with open(self.trace_file, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except FileNotFoundError:
            return []
        # A line strace is still writing (no newline yet) is left for the next read.
        raw = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
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
        return parse_sendfiles(self.trace_lines())

    def wait_sendfile(self, pred: Callable[[Sendfile], bool], what: str,
                      timeout: float = 20.0) -> Sendfile:
        """The first sendfile call ``pred`` accepts, once strace has written its line."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.sendfiles()
            found = next((call for call in calls if pred(call)), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline, \
                f"strace saw no sendfile call {what}; the last ones:\n" \
                + "\n".join(map(str, calls[-20:]))
            time.sleep(0.01)

    def sendfiles_on(self, port: int, timeout: float = 20.0) -> list[Sendfile]:
        """Every sendfile call on the server's end of the connection from ``port`` so far.

        A fresh one-byte marker file is sent through ``file_target`` on another connection
        and its sendfile call awaited: the server makes every sendfile call on its event
        loop's thread, one after the other, and each waits until strace has written its
        line, so the marker's line comes after those of every call made before. The marker's
        call is also the proof that the trace shows sendfile calls at all, decoded."""
        marker = os.path.join(self._dir.name, f"marker-{uuid.uuid4().hex[:12]}")
        with open(marker, "wb") as fh:
            fh.write(b"m")
        with self.connect() as sock:
            sock.sendall(request(self.file_target(marker)))
            status, _, _, body = read_response(sock)
        assert status == 200 and body == b"m", (status, body)
        self.wait_sendfile(lambda call: call.path == marker, f"sending {marker}", timeout)
        return [call for call in self.sendfiles() if call.peer_port == port]

    def stalled_download(self, target: str, timeout: float = 60.0
                         ) -> tuple[int, dict[str, str], bytes, list[Sendfile]]:
        """GET ``target`` on a connection with a small receive buffer whose client reads
        nothing until strace shows a sendfile call on it that found the socket's buffer full
        (sent less than asked, or EAGAIN); then the whole response is read. A file larger
        than ``stall_size()`` cannot fit, so that call must come. Returns (status, headers,
        body, the connection's sendfile calls)."""
        assert self.host is not None and self.port is not None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # Before connect: the window scale is agreed in the handshake.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
            sock.settimeout(timeout)
            sock.connect((self.host, self.port))
            port = sock.getsockname()[1]
            sock.sendall(request(target))
            self.wait_sendfile(lambda call: call.peer_port == port and call.short,
                               f"on port {port} that found the socket's buffer full", timeout)
            status, headers, _, body = read_response(sock, timeout)
        return status, headers, body, self.sendfiles_on(port)


@contextlib.contextmanager
def traced_server(args: list[str], file_target: Callable[[str], str]
                  ) -> Iterator[TracedServer]:
    """A started ``TracedServer`` for a fixture; stopped and its trace removed after."""
    srv = TracedServer(args, file_target)
    try:
        yield srv.start()
    finally:
        srv.close()


def stall_size() -> int:
    """A file size no connection to a ``stalled_download`` client can hold: the largest send
    buffer the kernel gives a socket (tcp_wmem's maximum; betula sets no SO_SNDBUF) plus the
    client's receive buffer, plus the fallback chunks sent after a full buffer and a margin,
    so that sendfile must find the buffer full and then has bytes left to resume with."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as fh:
        wmem_max = int(fh.read().split()[2])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return wmem_max + rcvbuf + 2 * FALLBACK_CHUNK + MIB + 12345


def write_stall_file(directory: Path) -> tuple[Path, bytes]:
    """A file of ``stall_size()`` random bytes: (path, its bytes)."""
    data = os.urandom(stall_size())
    path = directory / "stall.bin"
    path.write_bytes(data)
    return path, data


def assert_sent_by_sendfile(calls: list[Sendfile], path: str | Path,
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
    full = sum(1 for c in mine if c.short)
    assert total - full * FALLBACK_CHUNK <= sent <= total, (
        f"sendfile sent {sent} of {total} bytes ({full} calls found the buffer full):\n{shown}")
    starts = {c.offset for c in mine}
    for offset, _ in ranges:
        assert offset in starts, f"no sendfile call starts at {offset}:\n{shown}"
    for c in mine:
        assert any(offset <= c.offset and c.offset + max(c.result, 0) <= offset + count
                   for offset, count in ranges), f"a call outside {ranges}: {c}"


def assert_resumed(calls: list[Sendfile], path: str | Path) -> None:
    """A sendfile call of ``path`` found the socket's buffer full, and a later one went on
    past what it sent: the server came back to sendfile once the client read."""
    mine = [c for c in calls if c.path == str(path)]
    shown = "\n".join(map(str, mine[:40]))
    first = next((i for i, c in enumerate(mine) if c.short), None)
    assert first is not None, f"no sendfile call of {path} found the buffer full:\n{shown}"
    short = mine[first]
    beyond = short.offset + max(short.result, 0)
    assert any(c.offset >= beyond for c in mine[first + 1:]), (
        f"no sendfile call after {short} went on from offset {beyond}: the rest of the file "
        f"went out some other way:\n{shown}")


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
def server_fd(pid: int, client: socket.socket) -> int | None:
    """The descriptor, in server process ``pid``, of the other end of ``client``."""
    target = f"socket:[{tcp_ends(client)[1].inode}]"
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
