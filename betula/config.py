"""The settings registry: every option declared once.

The CLI (``betula.cli``), the ``BETULA_*`` environment variables, the TOML config file and
the README's option table are all generated from ``SETTINGS``. Precedence, highest first:
command line, environment, config file, default.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SETTINGS", "Config", "ConfigError", "Setting", "settings_markdown"]


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the setting and the source."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    number = int(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {number}")
    return number


def _positive_int(value: Any) -> int:
    number = _non_negative_int(value)
    if number == 0:
        raise ValueError("must be > 0, got 0")
    return number


def _deflate_level(value: Any) -> int:
    number = _non_negative_int(value)
    if not 1 <= number <= 9:
        raise ValueError(f"must be a zlib level from 1 to 9, got {number}")
    return number


def _positive_float(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be > 0, got {number}")
    return number


def _non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0.0:  # also refuses NaN
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


def _port(value: Any) -> int:
    number = _non_negative_int(value)
    if number > 65535:
        raise ValueError(f"must be between 0 and 65535, got {number}")
    return number


def _octal(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(str(value), 8)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _cert_reqs(value: Any) -> int:
    names = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    text = str(value).strip().lower()
    if text in names:
        return names[text]
    if text.isdigit() and int(text) in names.values():
        return int(text)
    raise ValueError(f"expected one of none|optional|required (or 0|1|2), got {value!r}")


def _mounts(value: Any) -> tuple[tuple[str, str], ...]:
    """PREFIX=MODULE:ATTR items (a list, a TOML table, or a comma-separated env string)."""
    if value is None or value == ():
        return ()
    if isinstance(value, str):
        items: list[Any] = [v for v in value.replace(",", " ").split() if v]
    elif isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected PREFIX=MODULE:ATTR items, got {value!r}")
    result: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            prefix, spec = str(item[0]), str(item[1])
        else:
            prefix, sep, spec = str(item).partition("=")
            if not sep or not spec:
                raise ValueError(f"mount {item!r}: expected PREFIX=MODULE:ATTR")
        if not prefix.startswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start with '/'")
        if len(prefix) > 1 and prefix.endswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must not end with '/'")
        if prefix in seen:
            raise ValueError(f"mount prefix {prefix!r} is given twice")
        seen.add(prefix)
        result.append((prefix, spec))
    return tuple(result)


def _str_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _workers(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    return _non_negative_int(value)


def _access_format(value: Any) -> str:
    from .access_log import AccessLog  # (checked by the formatter the server uses)

    return AccessLog.check_format(_str(value))


def _allow_ips(value: Any) -> str:
    from .proxy import ProxyTrust  # (the parser is the one the server uses)

    text = _str(value)
    ProxyTrust(text)  # ValueError for an entry that is not an address or a range
    return text


def _static_dirs(value: Any) -> tuple[tuple[str, str], ...]:
    from .static import parse_static_dirs  # (the parser is the one the server uses)

    return parse_static_dirs(value)


def _root_path(value: Any) -> str:
    text = _str(value)
    if text and not text.startswith("/"):
        raise ValueError(f"must start with '/', got {text!r}")
    return text.rstrip("/")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    convert: Callable[[Any], Any] = _str
    section: str = "server"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    boolean: bool = False
    multiple: bool = False  # the flag may repeat; values collect into a list
    cli: bool = True
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "BETULA_" + self.name.upper()

    def parse(self, value: Any, source: str) -> Any:
        if value is None and self.default is None:
            return None
        try:
            converted = self.convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid value for {self.name} ({source}): {exc}") from None
        if self.choices is not None and converted not in self.choices:
            raise ConfigError(
                f"invalid value for {self.name} ({source}): {value!r} is not one of "
                + ", ".join(self.choices)
            )
        return converted


def _choice(value: Any) -> str:
    return _str(value).strip().lower()


KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

SETTINGS: tuple[Setting, ...] = (
    # -- application --------------------------------------------------------------------
    Setting("app", None, "The application, as module:attribute (attribute defaults to 'app').",
            _optional_str, "application", cli=False),
    Setting("factory", False, "Treat the app as a factory: call it with no arguments to get "
            "the application.", _bool, "application", boolean=True),
    Setting("app_dir", ".", "Directory added to sys.path before importing the app.", _str,
            "application", metavar="DIR"),
    Setting("interface", "auto", "Application interface: 'auto' tells an ASGI app (async, "
            "3 arguments) from a WSGI one (2 arguments) and says which it chose.", _choice,
            "application", choices=("auto", "asgi", "wsgi")),
    Setting("threads", 16, "Threads running a WSGI app per worker (one slow request does not "
            "hold the others).", lambda v: max(1, _non_negative_int(v)), "application",
            metavar="N"),
    Setting("threads_batch", True, "Run the WSGI threads under the SCHED_BATCH policy "
            "(Linux): a thread woken for a request does not preempt the event loop that "
            "holds the GIL; fewer context switches, more requests per CPU.", _bool,
            "application", boolean=True),
    Setting("mount", (), "Serve an app under a path prefix, PREFIX=MODULE:ATTR (repeatable; "
            "ASGI and WSGI side by side; longest prefix wins; no match is 404).", _mounts,
            "application", metavar="PREFIX=APP", multiple=True),
    Setting("runner", None, "Runner module (run_asgi/run_wsgi) that served requests go "
            "through, as embedded calls do.", _optional_str, "application", metavar="MODULE"),
    Setting("lifespan", "auto", "Lifespan protocol: 'auto' runs it when the app supports it, "
            "'on' requires it, 'off' skips it.", _choice, "application",
            choices=("auto", "on", "off")),
    Setting("lifespan_startup_timeout", 60.0, "Seconds the app may take to answer lifespan "
            "startup.", _positive_float, "application", metavar="SECONDS"),
    Setting("lifespan_shutdown_timeout", 30.0, "Seconds the app may take to answer lifespan "
            "shutdown.", _positive_float, "application", metavar="SECONDS"),
    Setting("root_path", "", "ASGI root_path: the mount point of the app behind a proxy.",
            _root_path, "application", metavar="PATH"),
    Setting("proxy_headers", True, "Take the client address, scheme and host from "
            "X-Forwarded-For/-Proto/-Host or RFC 7239 Forwarded, when the peer is in "
            "--forwarded-allow-ips (the right-most untrusted address of a chain is the "
            "client).", _bool, "application", boolean=True),
    Setting("forwarded_allow_ips", "127.0.0.1,::1", "Peers trusted for proxy headers: "
            "addresses and CIDR ranges, comma-separated, or '*' for any (a Unix-socket peer "
            "is always trusted).", _allow_ips, "application", metavar="LIST"),
    # -- request hooks -------------------------------------------------------------------
    Setting("on_request", None, "Request hook module:function called with each HTTP request "
            "before the app (ASGI and WSGI): it may answer instead of the app (return a "
            "response) or change the headers the app sees. Unset: off.", _optional_str,
            "application", metavar="HOOK"),
    Setting("on_response", None, "Request hook module:function called with each HTTP "
            "request and its response once the status and headers are known, before they "
            "are sent (streamed responses too): it may change the headers. Unset: off.",
            _optional_str, "application", metavar="HOOK"),
    Setting("on_error", None, "Request hook module:function called with the request and "
            "the exception when the app raises before its response started: it returns the "
            "response to send (None: the plain 500). Unset: off.", _optional_str,
            "application", metavar="HOOK"),
    # -- process model -------------------------------------------------------------------
    Setting("workers", 1, "Workers (processes; threads or sub-interpreters in those modes); 0 or "
            "'auto' for one per CPU. Above 1 a master process supervises them (HUP: rolling "
            "restart, TTIN/TTOU: one more/less).",
            _workers, "process", metavar="N"),
    Setting("worker_mode", "process", "What a worker is: 'process' (forked processes), or "
            "'thread' (--workers threads of one process, each with its own event loop, on a "
            "free-threaded CPython 3.13t or newer; refused when the GIL is on), or "
            "'subinterpreter' (one process does the I/O and runs a WSGI app in --workers "
            "sub-interpreters with their own GIL; CPython 3.13 or newer).", _choice,
            "process", choices=("process", "thread", "subinterpreter")),
    Setting("allow_gil", False, "Run --worker-mode thread even though the GIL is on (a "
            "build with the GIL, or an extension that re-enabled it): the threads then take "
            "turns on one CPU.", _bool, "process", boolean=True),
    Setting("limit_max_requests", 0, "Recycle a worker after this many requests (0: never); "
            "with a master the replacement is serving before the old one drains.",
            _non_negative_int, "process", metavar="N"),
    Setting("limit_max_requests_jitter", 0, "Add 0..J to each worker's --limit-max-requests "
            "so workers do not all recycle at once.", _non_negative_int, "process",
            metavar="J"),
    Setting("gc_freeze", True, "Once the app has started, move every object it made so far "
            "out of the garbage collector's reach (gc.freeze): full collections then scan only "
            "what serving creates.", _bool, "process", boolean=True),
    Setting("limit_max_rss", 0, "Recycle a worker whose resident memory passes this many MiB "
            "(checked every second; 0: never).", _non_negative_int, "process", metavar="MB"),
    Setting("timeout_worker", 30.0, "With a master: kill and replace a worker whose event loop "
            "has not answered for this long (stuck app); its in-flight request paths are "
            "logged first.", _positive_float, "process", metavar="SECONDS"),
    Setting("on_starting", None, "Hook module:function called in the master (or the single "
            "process) before the listeners open, with the config.", _optional_str, "process",
            metavar="HOOK"),
    Setting("when_ready", None, "Hook called once all first workers serve (the single "
            "process: once it serves), with the config.", _optional_str, "process",
            metavar="HOOK"),
    Setting("on_worker_boot", None, "Hook called in each worker process before it loads the "
            "app, with the config.", _optional_str, "process", metavar="HOOK"),
    Setting("on_worker_exit", None, "Hook called in the master after a worker exits, with the "
            "config and the worker's pid.", _optional_str, "process", metavar="HOOK"),
    Setting("on_exit", None, "Hook called in the master (or the single process) before it "
            "exits, with the config.", _optional_str, "process", metavar="HOOK"),
    Setting("reload", False, "Restart the workers when a source file changes (development; "
            "a change that does not import is logged and the old workers keep serving).",
            _bool, "process", boolean=True),
    Setting("reload_dir", (), "Directory to watch with --reload (repeatable; default: the "
            "current directory).", _str_list, "process", metavar="DIR", multiple=True),
    Setting("reload_include", (), "Glob of files that trigger a reload (repeatable; default "
            "*.py).", _str_list, "process", metavar="GLOB", multiple=True),
    Setting("reload_exclude", (), "Glob of paths never watched (repeatable; default .*, "
            "*.py[cod], __pycache__, *~).", _str_list, "process", metavar="GLOB",
            multiple=True),
    Setting("pid", None, "Write the (master) process id to this file.", _optional_str,
            "process", metavar="FILE"),
    # -- listeners -----------------------------------------------------------------------
    Setting("host", "127.0.0.1", "Bind address (IPv4 or IPv6; '::' for all IPv6).", _str,
            "listen"),
    Setting("port", 8000, "Bind port (0 picks a free port).", _port, "listen"),
    Setting("uds", None, "Bind to this Unix domain socket path instead of TCP.",
            _optional_str, "listen", metavar="PATH"),
    Setting("uds_perms", 0o666, "Permissions (octal) of the Unix domain socket file.", _octal,
            "listen", metavar="MODE"),
    Setting("fd", None, "Serve on an already-bound listening socket given by file descriptor.",
            lambda v: None if v is None else _non_negative_int(v), "listen", metavar="FD"),
    Setting("backlog", 2048, "Listen backlog: connections the kernel queues before accept.",
            _non_negative_int, "listen"),
    # -- PROXY protocol ------------------------------------------------------------------
    Setting("proxy_protocol", "off", "Read HAProxy's PROXY protocol header (before TLS) on "
            "every connection from a peer in --proxy-allow-ips: its client becomes the "
            "request's client. 'v1' (text), 'v2' (binary) or 'auto' (either); such a "
            "connection without a valid header within --timeout-request-header is closed. "
            "Other peers are served as they are, unless they send a header (closed).",
            _choice, "listen", choices=("off", "v1", "v2", "auto")),
    Setting("proxy_allow_ips", "127.0.0.1,::1", "Peers whose PROXY header is taken (and "
            "required): addresses and CIDR ranges, comma-separated, or '*' for any (a "
            "Unix-socket peer is always trusted).", _allow_ips, "listen", metavar="LIST"),
    # -- TLS -----------------------------------------------------------------------------
    Setting("ssl_certfile", None, "TLS certificate file (PEM); enables HTTPS.", _optional_str,
            "tls", metavar="FILE"),
    Setting("ssl_keyfile", None, "TLS private key file (PEM).", _optional_str, "tls",
            metavar="FILE"),
    Setting("ssl_keyfile_password", None, "Password of the TLS private key.", _optional_str,
            "tls", metavar="PASSWORD"),
    Setting("ssl_ca_certs", None, "CA bundle used to verify client certificates (mutual TLS).",
            _optional_str, "tls", metavar="FILE"),
    Setting("ssl_cert_reqs", ssl.CERT_NONE, "Client certificate requirement: none, optional or "
            "required (0, 1, 2).", _cert_reqs, "tls", metavar="MODE"),
    Setting("ssl_ciphers", "TLSv1", "TLS ciphers (OpenSSL cipher list).", _str, "tls"),
    # -- HTTP ----------------------------------------------------------------------------
    Setting("timeout_keep_alive", 5.0, "Close a keep-alive connection idle this many seconds.",
            _positive_float, "http", metavar="SECONDS"),
    Setting("timeout_request_header", 10.0, "Close a connection whose request line and headers "
            "take longer than this to arrive (slowloris).", _positive_float, "http",
            metavar="SECONDS"),
    Setting("timeout_request_body", 60.0, "Answer 408 and close when a request body stops "
            "arriving: no body bytes for this many seconds while the server is reading it "
            "(a stalled upload).", _positive_float, "http", metavar="SECONDS"),
    Setting("timeout_graceful_shutdown", 30.0, "On shutdown, wait this long for in-flight "
            "requests before closing connections.", _positive_float, "http", metavar="SECONDS"),
    Setting("limit_concurrency", 0, "Answer 503 once this many connections and tasks are open "
            "(0: no limit).", _non_negative_int, "http", metavar="N"),
    Setting("limit_request_line", 8190, "Longest request line in bytes (else 414).",
            _non_negative_int, "http", metavar="BYTES"),
    Setting("limit_request_fields", 100, "Most header fields in a request (else 431).",
            _non_negative_int, "http", metavar="N"),
    Setting("limit_request_field_size", 8190, "Longest header field (name + value) in bytes "
            "(else 431).", _non_negative_int, "http", metavar="BYTES"),
    Setting("limit_request_header_size", 64 * KIB, "Largest header section in bytes "
            "(else 431).", _non_negative_int, "http", metavar="BYTES"),
    Setting("limit_request_body", 1 * GIB, "Largest request body in bytes (else 413; "
            "0: no limit).", _non_negative_int, "http", metavar="BYTES"),
    Setting("server_header", True, "Send a 'Server: betula' header.", _bool, "http",
            boolean=True),
    Setting("date_header", True, "Send a 'Date' header.", _bool, "http", boolean=True),
    # -- WebSocket -----------------------------------------------------------------------
    Setting("http2", True, "Serve HTTP/2: over TLS when the client picks h2 (ALPN), in the clear "
            "when it opens with the HTTP/2 preface (prior knowledge), on the same port as "
            "HTTP/1.1.", _bool, "http2", boolean=True),
    Setting("h2_max_concurrent_streams", 100, "Streams one HTTP/2 client may have open at once "
            "(more are refused with REFUSED_STREAM).", _positive_int, "http2", metavar="N"),
    Setting("h2_initial_window_size", 256 * KIB, "Bytes of request body one HTTP/2 stream may "
            "send before the app reads them (flow control window, at most 2^31-1).",
            lambda v: min(_positive_int(v), 2**31 - 1), "http2", metavar="BYTES"),
    Setting("h2_max_frame_size", 16 * KIB, "Largest HTTP/2 frame payload the server takes "
            "(16384 to 16777215).", lambda v: min(max(_positive_int(v), 16384), 16777215),
            "http2", metavar="BYTES"),
    Setting("h2_max_header_list_size", 64 * KIB, "Largest decoded HTTP/2 header list in bytes "
            "(a bigger one ends the connection: an HPACK bomb).", _positive_int, "http2",
            metavar="BYTES"),
    Setting("ws", "auto", "WebSocket support: 'auto' (or 'websockets') upgrades WebSocket "
            "requests to ASGI apps; 'none' answers them as plain HTTP.", _choice, "websocket",
            choices=("auto", "websockets", "none")),
    Setting("ws_max_size", 16 * MIB, "Largest incoming WebSocket message in bytes, after "
            "decompression (else close 1009).", _positive_int, "websocket", metavar="BYTES"),
    Setting("ws_max_queue", 32, "Incoming messages queued for an app that is not receiving "
            "before reading from that client pauses.", _positive_int, "websocket",
            metavar="N"),
    Setting("ws_ping_interval", 20.0, "Send a ping this often in seconds (0: never).",
            _non_negative_float, "websocket", metavar="SECONDS"),
    Setting("ws_ping_timeout", 20.0, "Close a connection whose pong has not come back after "
            "this many seconds (0: wait forever).", _non_negative_float, "websocket",
            metavar="SECONDS"),
    Setting("ws_per_message_deflate", True, "Negotiate permessage-deflate compression when "
            "the client offers it.", _bool, "websocket", boolean=True),
    Setting("ws_deflate_level", 6, "zlib level of permessage-deflate compression: 6 is "
            "websockets' and uvicorn's; 1 takes about half the CPU on JSON messages for about "
            "a quarter more bytes; 9 is the smallest.", _deflate_level, "websocket",
            metavar="LEVEL"),
    Setting("ws_close_timeout", 5.0, "After sending a close frame, wait this long for the "
            "client's before dropping the connection.", _positive_float, "websocket",
            metavar="SECONDS"),
    # -- shared state and pub/sub -------------------------------------------------------
    Setting("state_max_bytes", 256 * MIB, "Memory the shared state (betula.state) may hold, "
            "keys and values counted; a write past it raises StateFull.", _positive_int,
            "state", metavar="BYTES"),
    Setting("redis_url", "", "Keep the shared state and pub/sub in this Redis "
            "(redis://HOST:PORT/DB, rediss://..., unix:///path.sock) instead of the master: "
            "for workers on several machines. Empty: embedded.", _str, "state",
            metavar="URL"),
    Setting("pubsub_queue", 1000, "Messages one pub/sub subscription may hold for an app "
            "that is not reading; past it the newest are dropped and the app gets a Gap.",
            _positive_int, "state", metavar="N"),
    # -- static files --------------------------------------------------------------------
    Setting("static", (), "Serve the files of DIRECTORY under PREFIX, PREFIX=DIRECTORY "
            "(repeatable; the app is not called for them; a relative DIRECTORY is relative to "
            "the current directory; the longest of static and mount prefixes wins). GET/HEAD, "
            "ETag/Last-Modified (304), one byte range (206), precompressed .br/.gz siblings.",
            _static_dirs, "static", metavar="PREFIX=DIR", multiple=True),
    # -- logging -------------------------------------------------------------------------
    Setting("log_level", "info", "Log level.", _choice, "logging",
            choices=("critical", "error", "warning", "info", "debug", "trace")),
    Setting("access_log", True, "Log one line per request.", _bool, "logging", boolean=True),
    Setting("access_log_format", "", "The access log's line in gunicorn's format and atoms "
            "(e.g. '%%(h)s %%(l)s %%(u)s %%(t)s \"%%(r)s\" %%(s)s %%(b)s \"%%(f)s\" \"%%(a)s\"'), "
            "written without the log prefix. Empty: Betula's own line.", _access_format,
            "logging", metavar="FORMAT"),
    Setting("access_log_json", False, "Write the access log as one JSON object a line "
            "(time, client, method, path, query, protocol, status, bytes, duration_ms, "
            "referer, user_agent, pid).", _bool, "logging", boolean=True),
    Setting("access_log_file", "", "Write the access log to this file (appended to; "
            "reopened on SIGUSR1, for logrotate) or '-' for stdout. Empty: stderr, with the "
            "error log.", _str, "logging", metavar="PATH"),
    # -- metrics -------------------------------------------------------------------------
    Setting("metrics_port", 0, "Serve Prometheus metrics at /metrics on this port (on "
            "--host), summed over all workers; needs prometheus_client (pip install "
            "'betula[metrics]'). 0: off.", _port, "metrics", metavar="PORT"),
    Setting("metrics_dir", "", "Where workers leave their counts for the master, once a "
            "second (a tmpfs is best). Empty: a new temporary directory, removed at exit.",
            _str, "metrics", metavar="DIR"),
    # -- config file ---------------------------------------------------------------------
    Setting("config", None, "TOML file with settings (same names as the flags, with '_' or "
            "'-').", _optional_str, "config", metavar="FILE"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


class Config:
    """Resolved settings, read as attributes; ``sources`` says where each value came from."""

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]):
        self._values = dict(values)
        self.sources = dict(sources)
        # Plain attributes: settings are read on the per-request path.
        self.__dict__.update(self._values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def replace(self, **changes: Any) -> Config:
        values = dict(self._values)
        sources = dict(self.sources)
        for name, value in changes.items():
            values[name] = BY_NAME[name].parse(value, "override")
            sources[name] = "override"
        return Config(values, sources)

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_certfile)

    @classmethod
    def load(
        cls,
        cli: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        """Resolve every setting: overrides > cli > environment > config file > default."""
        cli = dict(cli or {})
        cli.update(overrides)
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for setting in SETTINGS:
            values[setting.name] = setting.default
            sources[setting.name] = "default"

        env_values = {s.name: environ[s.env] for s in SETTINGS if s.env in environ}
        config_path = cli.get("config", env_values.get("config"))
        if config_path:
            for name, value in _read_toml(config_path).items():
                values[name] = BY_NAME[name].parse(value, f"config file {config_path}")
                sources[name] = "file"
        for name, value in env_values.items():
            values[name] = BY_NAME[name].parse(value, f"environment {BY_NAME[name].env}")
            sources[name] = "env"
        for name, value in cli.items():
            if name not in BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = BY_NAME[name].parse(value, "command line")
            sources[name] = "cli"
        _check(values)
        return cls(values, sources)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if isinstance(data.get("betula"), dict) and len(data) == 1:
        data = data["betula"]
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in BY_NAME or name == "config":
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        result[name] = value
    return result


def _check(values: dict[str, Any]) -> None:
    if values["ssl_keyfile"] and not values["ssl_certfile"]:
        raise ConfigError("ssl_keyfile given without ssl_certfile")
    if values["ssl_cert_reqs"] != ssl.CERT_NONE and not values["ssl_ca_certs"]:
        raise ConfigError("ssl_cert_reqs needs ssl_ca_certs (the CA that signs client certs)")
    if values["uds"] and values["fd"] is not None:
        raise ConfigError("uds and fd are exclusive: give one listener")


def add_arguments(parser: argparse.ArgumentParser, settings: Iterable[Setting] = SETTINGS) -> None:
    """Add one CLI flag per setting. Defaults are suppressed so only given flags appear."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in settings:
        if not setting.cli:
            continue
        group = groups.get(setting.section)
        if group is None:
            group = groups[setting.section] = parser.add_argument_group(setting.section)
        help_text = f"{setting.help} [env {setting.env}; default {_show(setting)}]"
        flags = [setting.flag, *setting.aliases]
        if setting.boolean:
            group.add_argument(*flags, dest=setting.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif setting.multiple:
            group.add_argument(*flags, dest=setting.name, action="append",
                               default=argparse.SUPPRESS, metavar=setting.metavar,
                               help=help_text)
        else:
            group.add_argument(*flags, dest=setting.name, default=argparse.SUPPRESS,
                               choices=setting.choices, metavar=setting.metavar, help=help_text)


def _show(setting: Setting) -> str:
    if setting.name == "uds_perms":
        return oct(setting.default)
    if setting.name == "ssl_cert_reqs":
        return "none"
    if setting.default is None or setting.default == ():
        return "unset"
    if isinstance(setting.default, bool):
        return "on" if setting.default else "off"
    return str(setting.default)


def _toml_value(value: Any) -> str:
    """A setting's value as TOML (what a config file would say to get it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def describe(config: Config) -> str:
    """``--print-config``: every effective setting as a TOML line (a config file that
    reproduces it), with where its value came from: the command line, the environment,
    the config file or the default. An unset optional setting is a comment."""
    where = {"cli": lambda s: f"flag {s.flag}" if s.cli else "argument",
             "env": lambda s: f"env {s.env}",
             "file": lambda s: f"file {config.config}",
             "default": lambda s: "default",
             "override": lambda s: "override"}
    rows = []
    for setting in SETTINGS:
        if setting.name == "config":
            continue
        value = getattr(config, setting.name)
        source = where.get(config.sources.get(setting.name, "default"),
                           lambda s: "default")(setting)
        if value is None:
            rows.append((f"# {setting.name} = (unset)", source))
        elif setting.name == "uds_perms":
            rows.append((f"{setting.name} = 0o{value:o}", source))  # TOML's octal integer
        elif setting.name == "ssl_cert_reqs":
            names = {ssl.CERT_NONE: "none", ssl.CERT_OPTIONAL: "optional",
                     ssl.CERT_REQUIRED: "required"}
            rows.append((f'{setting.name} = "{names.get(value, value)}"', source))
        else:
            rows.append((f"{setting.name} = {_toml_value(value)}", source))
    width = max(len(line) for line, _ in rows)
    header = "# betula: the effective settings, each with where it came from"
    if config.config:
        header += f" (config file {config.config})"
    return "\n".join([header, *(f"{line:<{width}}  # {source}" for line, source in rows)])


def settings_markdown() -> str:
    """The README's option table."""
    lines = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`{s.flag}`" if s.cli else "`MODULE:ATTR` (argument)"
        if s.boolean:
            flag = f"`{s.flag}` / `--no-{s.flag[2:]}`"
        text = s.help.replace("%%", "%")  # (argparse's escape)
        lines.append(f"| {flag} | `{s.env}` | `{_show(s)}` | {text} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - docs helper
    print(settings_markdown())
