"""``--proxy-protocol``: a listener whose connections begin with a PROXY header.

The header comes before anything else on the connection, a TLS handshake included, so it
is read here, on the accepted socket, before asyncio makes a transport of it: the listener
accepts, peeks at the first bytes and consumes only the header's (``ProxyHeaderParser``
never asks for a byte past it), then hands the socket to ``loop.connect_accepted_socket``
(which does the TLS handshake on a TLS listener) with an HTTP/1 connection told the client
the header named (``HTTP1Connection.given_client``). From there on the connection is like
any other: HTTP/1.1, HTTP/2 (prior knowledge or ALPN), WebSocket; every adapter and the
access log see the header's client, since they all read the connection's ``client``.

Trust (``--proxy-allow-ips``, the same ``ProxyTrust`` as ``--forwarded-allow-ips``): a
connection from a trusted peer must begin with a header of an accepted version, else it
is closed, nothing sent, with a warning; so must one whose header does not arrive within
``--timeout-request-header``. A connection from any other peer is served as it is (its
peer is its client), unless it begins with a PROXY header: then it is closed with a
warning (it may not say who its client is). A Unix-socket peer is trusted.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from .protocols.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeaderParser,
    ProxyProtocolError,
    looks_like_header,
)
from .proxy import ProxyTrust

__all__ = ["VERSIONS", "ProxyProtocolListener"]

logger = logging.getLogger("betula.error")

# --proxy-protocol's values: the header versions each accepts.
VERSIONS = {"v1": (1,), "v2": (2,), "auto": (1, 2)}
# Connections accepted per readiness of the listening socket (then the loop turns).
ACCEPT_BATCH = 128
# Out of file descriptors (or memory): accepting pauses this long, as asyncio's does.
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class _Pending:
    """An accepted connection whose first bytes are still to be read."""

    __slots__ = ("sock", "fd", "peer", "parser", "early", "timer")

    def __init__(self, sock: socket.socket, peer: tuple[str, int] | None,
                 parser: ProxyHeaderParser | None) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.parser = parser  # None: an untrusted peer (watched for a header it may not send)
        self.early = b""  # an untrusted peer's bytes consumed while they looked like one
        self.timer: asyncio.TimerHandle | None = None


class _Early(asyncio.Protocol):
    """Gives a connection, once it has its transport, the bytes read before it had one."""

    def __init__(self, conn: Any, early: bytes) -> None:
        self.conn = conn
        self.early = early

    def connection_made(self, transport: Any) -> None:
        conn = self.conn
        transport.set_protocol(conn)
        conn.connection_made(transport)
        conn.data_received(self.early)


class ProxyProtocolListener:
    """One listening socket served with ``--proxy-protocol``; ``close()`` stops accepting
    (as ``asyncio.Server.close``) and closes the connections still sending a header."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], Any], ssl_context: Any, config: Any) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.ssl_context = ssl_context
        self.versions = VERSIONS[config.proxy_protocol]
        self.trust = ProxyTrust(config.proxy_allow_ips)
        self.timeout = config.timeout_request_header
        self.pending: dict[int, _Pending] = {}  # by file descriptor
        self.tasks: set[asyncio.Task[None]] = set()  # sockets being made transports
        self.closed = False
        self._unix = sock.family == socket.AF_UNIX
        loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        for pending in list(self.pending.values()):
            self._forget(pending)
            pending.sock.close()

    # -- accepting -----------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    logger.error("cannot accept a connection: %s", exc)
                    return
                logger.error("cannot accept a connection: %s: pausing accepts %.0fs",
                             exc.strerror, ACCEPT_RETRY_DELAY)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)
                return
            sock.setblocking(False)
            self._watch(sock)

    def _resume_accepting(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def _watch(self, sock: socket.socket) -> None:
        peer = None
        if not self._unix:
            try:
                address = sock.getpeername()
            except OSError:  # gone already
                sock.close()
                return
            peer = (str(address[0]), int(address[1]))
        trusted = self.trust.trusts(peer[0] if peer else None)
        pending = _Pending(sock, peer, ProxyHeaderParser(self.versions) if trusted else None)
        pending.timer = self.loop.call_later(self.timeout, self._timed_out, pending)
        self.pending[pending.fd] = pending
        self.loop.add_reader(pending.fd, self._readable, pending)

    # -- the first bytes -----------------------------------------------------------------
    def _readable(self, pending: _Pending) -> None:
        try:
            if pending.parser is not None:
                self._read_header(pending)
            else:
                self._read_untrusted(pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # reset by the peer, mostly
            self._close(pending, logging.DEBUG, "%s - connection lost before its first "
                        "bytes were read: %s", _who(pending.peer), exc)

    def _read_header(self, pending: _Pending) -> None:
        parser = pending.parser
        assert parser is not None
        data = pending.sock.recv(parser.room, socket.MSG_PEEK)
        if not data:
            if parser.begun:
                self._close(pending, logging.WARNING, "%s - closed before its PROXY header "
                            "was complete", _who(pending.peer))
            else:  # (a proxy's connect-only health check, mostly)
                self._close(pending, logging.DEBUG, "%s - closed before sending anything",
                            _who(pending.peer))
            return
        try:
            info = parser.feed(data)
        except ProxyProtocolError as exc:
            self._close(pending, logging.WARNING, "%s - bad PROXY header: %s: closed",
                        _who(pending.peer), exc)
            return
        _consume(pending.sock, len(data) - len(parser.rest))
        if info is not None:
            self._hand_over(pending, info.client, b"")

    def _read_untrusted(self, pending: _Pending) -> None:
        data = pending.sock.recv(len(V2_SIGNATURE) - len(pending.early), socket.MSG_PEEK)
        if not data:
            self._close(pending, logging.DEBUG, "%s - closed before sending anything",
                        _who(pending.peer))
            return
        early = pending.early + data
        looks = looks_like_header(early)
        if looks:
            self._close(pending, logging.WARNING, "%s - PROXY header from a peer not in "
                        "--proxy-allow-ips: closed", _who(pending.peer))
        elif looks is None:  # a signature's first bytes: taken, so that reading goes on
            _consume(pending.sock, len(data))
            pending.early = early
        elif pending.early and self.ssl_context is not None:
            self._close(pending, logging.DEBUG, "%s - not a TLS handshake: closed",
                        _who(pending.peer))
        else:  # not a header: served as it is (what was taken to tell goes first)
            self._hand_over(pending, None, pending.early)

    def _timed_out(self, pending: _Pending) -> None:
        pending.timer = None
        if pending.parser is not None:
            self._close(pending, logging.WARNING, "%s - no PROXY header within %gs "
                        "(--timeout-request-header): closed", _who(pending.peer),
                        self.timeout)
        else:
            self._close(pending, logging.DEBUG, "%s - sent nothing within %gs: closed",
                        _who(pending.peer), self.timeout)

    def _forget(self, pending: _Pending) -> None:
        self.pending.pop(pending.fd, None)
        self.loop.remove_reader(pending.fd)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _close(self, pending: _Pending, level: int, message: str, *args: Any) -> None:
        """Close without a byte sent, and say why."""
        self._forget(pending)
        pending.sock.close()
        logger.log(level, message, *args)

    # -- the connection ------------------------------------------------------------------
    def _hand_over(self, pending: _Pending, client: tuple[str, int] | None,
                   early: bytes) -> None:
        self._forget(pending)
        conn = self.factory()
        conn.given_client = client  # (None: LOCAL/UNKNOWN, or untrusted: the socket's peer)
        protocol = _Early(conn, early) if early else conn
        task = self.loop.create_task(self._connect(pending, conn, protocol))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, pending: _Pending, conn: Any, protocol: Any) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: protocol, pending.sock,
                                                    ssl=self.ssl_context)
        except asyncio.CancelledError:
            pending.sock.close()
            raise
        except Exception as exc:  # a failed TLS handshake, the peer gone
            pending.sock.close()
            logger.debug("%s - connection not set up: %r", _who(pending.peer), exc)
            return
        if self.closed:  # stopping: a connection that came in late drains as the others
            conn.shutdown()


def _consume(sock: socket.socket, count: int) -> None:
    """Take ``count`` bytes that were peeked at (they are in the socket's buffer)."""
    while count > 0:
        data = sock.recv(count)
        if not data:
            return
        count -= len(data)


def _who(peer: tuple[str, int] | None) -> str:
    """``host:port`` for log lines (the socket's peer; "unix" for a Unix-socket one)."""
    return f"{peer[0]}:{peer[1]}" if peer else "unix"
