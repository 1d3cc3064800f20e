"""Listening sockets (TCP over IPv4/IPv6, Unix domain, inherited fd) and the TLS context.

Sockets are created here, before any event loop exists, so a master process can own them and
hand them to workers.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
from typing import Any

__all__ = ["ListenerError", "create_sockets", "create_ssl_context", "describe"]

logger = logging.getLogger("betula.error")


class ListenerError(Exception):
    """A listener could not be set up; the message says which and why."""


def systemd_sockets() -> list[socket.socket]:
    """Sockets passed by systemd socket activation (LISTEN_FDS/LISTEN_PID), fds 3, 4, ...

    As sd_listen_fds(unset_environment=1): the variables leave the environment whether or
    not they are for this process, so neither the workers nor the app's own children ever
    take them as theirs. Ones meant for another pid are ignored (logged): the configured
    listener (--port, --uds, --fd) is used instead."""
    fds = os.environ.pop("LISTEN_FDS", None)
    pid_text = os.environ.pop("LISTEN_PID", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if fds is None:
        return []
    try:
        count = int(fds)
        pid = int(pid_text or "0")
    except ValueError:
        logger.warning("ignoring LISTEN_FDS=%r, LISTEN_PID=%r: not numbers", fds, pid_text)
        return []
    if count <= 0:
        return []
    if pid != os.getpid():
        logger.warning("ignoring LISTEN_FDS=%d: LISTEN_PID %s is not this process (pid %d)",
                       count, pid_text, os.getpid())
        return []
    return [_from_fd(fd) for fd in range(3, 3 + count)]


def create_sockets(config: Any) -> list[socket.socket]:
    activated = systemd_sockets()
    if activated:
        return activated
    if config.fd is not None:
        return [_from_fd(config.fd)]
    if config.uds:
        return [_unix(config.uds, config.uds_perms, config.backlog)]
    return [_tcp(config.host, config.port, config.backlog)]


def _tcp(host: str, port: int, backlog: int) -> socket.socket:
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            # '::' serves IPv4 too where the system allows dual stack.
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:  # pragma: no cover - platform specific
                pass
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _unix(path: str, perms: int, backlog: int) -> socket.socket:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # stale socket from an earlier run
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, perms)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenerError(f"cannot listen on unix socket {path}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ListenerError(f"file descriptor {fd} is not a usable socket: {exc}") from None
    if sock.type != socket.SOCK_STREAM:
        raise ListenerError(f"file descriptor {fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket, tls: bool) -> str:
    """A URL-ish name for logs: http://127.0.0.1:8000, unix:/run/app.sock."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    scheme = "https" if tls else "http"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def create_ssl_context(config: Any) -> ssl.SSLContext | None:
    if not config.ssl_certfile:
        return None
    for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
        path = getattr(config, name)
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ListenerError(f"cannot read {name} {path}: {exc.strerror or exc}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile,
                            config.ssl_keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        raise ListenerError(
            f"cannot load TLS certificate {config.ssl_certfile} / key "
            f"{config.ssl_keyfile or '(in the certificate file)'}: {exc}") from None
    ctx.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs:
        try:
            ctx.load_verify_locations(config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ListenerError(f"cannot load TLS CA certificates: {exc}") from None
    if config.ssl_ciphers:
        try:
            ctx.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError as exc:
            raise ListenerError(f"invalid TLS ciphers {config.ssl_ciphers!r}: {exc}") from None
    # h2 first where HTTP/2 is on: a client offering both gets it (RFC 7301)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return ctx
