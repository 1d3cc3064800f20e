"""What the kernel holds for the server's end of a test's TCP connection (Linux).

- ``wait_server_read(sock)``: everything sent on ``sock`` has reached the server and the
  server process has read it, so the next send arrives in a read of its own (instead of
  sleeping and hoping two sends are not coalesced).
- ``tcp_ends(sock)``: both ends' queued bytes and zero-window state, so a test can tell
  the bytes a server took into its own memory from those still queued in the kernel; and
  each end's socket inode, to find the server's descriptor for it.
- ``server_end(pid, sock)``: the server process's own socket for that connection, duplicated
  into the test with pidfd_getfd(2), to read its socket options (TCP_NODELAY).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support import need

_PIDFD_GETFD = 438  # the syscall number on every Linux architecture (unified table)


def _address(text: str) -> tuple[str, int]:
    """An address as /proc/net/tcp{,6} prints it (each 32-bit word in host byte order)."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), int(port, 16)


# /proc/net/tcp's "tr" column: the zero window probe timer is pending (RFC 9293 §3.8.6.1).
_TIMER_PROBE0 = 4


@dataclass(frozen=True, slots=True)
class TcpEnd:
    """One end of a TCP connection as the kernel reports it."""

    unacked: int        # written by its owner, not yet acknowledged by the peer (or not sent)
    unread: int         # received, not yet read by its owner
    zero_window: bool   # it has bytes to send and probes a peer whose window is closed
    inode: int = 0      # its socket's inode: a process's descriptor links to "socket:[inode]"


def _ends() -> dict[tuple[tuple[str, int], tuple[str, int]], TcpEnd]:
    """(local, remote) -> TcpEnd of every TCP socket on the machine, in one pass."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            tx, rx = (int(n, 16) for n in fields[4].split(":"))
            timer = int(fields[5].split(":")[0], 16)
            found[(_plain(_address(fields[1])), _plain(_address(fields[2])))] = TcpEnd(
                tx, rx, timer == _TIMER_PROBE0, int(fields[9]))
    return found


def _plain(addr: tuple) -> tuple[str, int]:
    host = addr[0]
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, addr[1]


def tcp_ends(sock: socket.socket) -> tuple[TcpEnd, TcpEnd]:
    """(the client's end, the server's end) of the loopback connection ``sock`` is the
    client end of."""
    mine, theirs = _plain(sock.getsockname()), _plain(sock.getpeername())
    ends = _ends()
    try:
        return ends[(mine, theirs)], ends[(theirs, mine)]
    except KeyError:
        raise AssertionError(f"connection {mine} <-> {theirs} not in /proc/net/tcp*") from None


def wait_server_read(sock: socket.socket, timeout: float = 10.0) -> None:
    """Wait until the server's kernel has acknowledged every byte sent on ``sock`` and the
    server process has read them all from its socket."""
    deadline = time.monotonic() + timeout
    while True:
        client, server = tcp_ends(sock)
        if client.unacked == 0 and server.unread == 0:
            return
        assert time.monotonic() < deadline, (
            f"the server left bytes unread: client send queue {client.unacked}, "
            f"server receive queue {server.unread}")
        time.sleep(0.001)


@contextlib.contextmanager
def server_end(pid: int, sock: socket.socket) -> Iterator[socket.socket]:
    """The server process's socket for the connection ``sock`` is the client end of (a
    duplicate: closing it leaves the server's alone)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    want = _plain(sock.getsockname())
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue  # closed meanwhile
            fd = libc.syscall(_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                code = ctypes.get_errno()
                if code == errno.EBADF:
                    continue
                need.missing("pidfd_getfd(2) on the server's process",
                             f"Linux >= 5.6 and ptrace rights ({os.strerror(code)})")
            dup = socket.socket(fileno=fd)
            try:
                peer = _plain(dup.getpeername()) if dup.family != socket.AF_UNIX else None
            except OSError:
                peer = None
            if peer == want:
                try:
                    yield dup
                finally:
                    dup.close()
                return
            dup.close()
    finally:
        os.close(pidfd)
    raise AssertionError(f"pid {pid} holds no socket connected to {want}")
