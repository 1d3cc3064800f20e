"""A client that reads nothing until the server has to wait for it mid-response (Linux).

- ``LARGER_THAN_BUFFERS``: a response body size the kernel cannot hold for a stalled
  ``slow_reader`` on this host (the server's send buffer at its largest, tcp_wmem's maximum,
  plus the reader's fixed receive buffer, plus a margin for the server's own write buffer).
- ``slow_reader(server)``: a connection whose receive buffer is small and fixed whatever the
  host's defaults (tcp_rmem's initial value may be several MiB).
- ``stalled_mid_body(sock, size)``: the server's end probes the reader's closed window with
  part of a ``size``-byte response not yet in the kernel's buffers: the server must wait.
"""

from __future__ import annotations

import socket

from .server import ServerProcess
from .tcp import tcp_ends

# The reader's receive buffer, set before connect() so the window offered in the handshake
# is already the small one, and fixed (no autotuning). Linux doubles the value asked for.
RCVBUF = 256 * 1024


def send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to (tcp_wmem's maximum)."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as fh:
        return int(fh.read().split()[2])


LARGER_THAN_BUFFERS = send_buffer_max() + 2 * RCVBUF + 2 * 1024 * 1024


def slow_reader(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    """A connection to ``server`` with a receive buffer of ``RCVBUF``."""
    assert server.host is not None and server.port is not None
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.settimeout(timeout)
        sock.connect((server.host, server.port))
    except BaseException:
        sock.close()
        raise
    return sock


def stalled_mid_body(sock: socket.socket, size: int) -> bool:
    """The server's end of ``sock`` probes a closed window while the kernel holds less than
    the ``size`` bytes sent for the response: the rest is still with the server."""
    client_end, server_end = tcp_ends(sock)
    return server_end.zero_window and server_end.unacked + client_end.unread < size
