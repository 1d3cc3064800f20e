"""Start serving from a resolved Config: load the apps, open the listeners, run the worker."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from .embed import RunnerApp, RunnerWSGIApp, load_runner
from .endpoint import Endpoint
from .hooks import HookError, call_hook
from .importer import AppLoadError, load_app
from .listeners import ListenerError, create_sockets, create_ssl_context
from .metrics import MasterMetrics, MetricsServer
from .request_hooks import RequestHookError, RequestHooks
from .server import Server
from .shared.client import configure as configure_shared
from .shared.server import StateServer
from .static import static_problem
from .subinterp import (
    InterpreterApp,
    InterpreterASGIApp,
    SubinterpreterError,
    subinterpreter_problem,
)
from .supervisor import BOOT_FAILED, Supervisor, available_cpus
from .threadhost import ThreadHost, gil_problem, importing_without_gil
from .wsgi.http import is_wsgi_app

__all__ = ["run", "build_endpoints"]

logger = logging.getLogger("betula.error")


class SetupError(Exception):
    """A one-line reason the server cannot start."""


def _endpoint(config: Any, spec: str, prefix: str, runner: Any, factory: bool) -> Endpoint:
    where = f" (mounted at {prefix})" if prefix else ""
    try:
        app = load_app(spec, factory=factory, app_dir=config.app_dir)
    except AppLoadError as exc:
        raise SetupError(f"{exc}{where}") from None
    interface = config.interface
    how = "configured"
    if interface == "auto":
        detected = is_wsgi_app(app)
        interface = "wsgi" if detected else "asgi"
        how = "auto-detected" if detected is not None else "assumed"
    # A runner wraps only the kind of app it has a function for; the other kind keeps the
    # default path (as in the embedding API).
    if runner is not None and interface == "wsgi" and hasattr(runner, "run_wsgi"):
        app = RunnerWSGIApp(app, runner)
    elif runner is not None and interface == "asgi" and hasattr(runner, "run_asgi"):
        app = RunnerApp(app, runner)
    endpoint = Endpoint(app, interface, spec, prefix, config.root_path)
    endpoint.how = how  # said in the startup line: "serving app (WSGI, auto-detected)"
    return endpoint


def build_endpoints(config: Any) -> list[Endpoint]:
    runner = None
    if config.runner:
        try:
            runner = load_runner(config.runner)
        except (ImportError, ValueError) as exc:
            raise SetupError(f"cannot load runner {config.runner!r}: {exc}") from None
    mounts = list(config.mount)
    if not mounts:
        return [_endpoint(config, config.app, "", runner, config.factory)]
    endpoints = [_endpoint(config, spec, prefix, runner, False) for prefix, spec in mounts]
    if config.app:
        if any(prefix == "/" for prefix, _ in mounts):
            raise SetupError("an app and a mount at '/' both claim the root: give one")
        endpoints.append(_endpoint(config, config.app, "/", runner, config.factory))
    return endpoints


def run(config: Any) -> int:
    """Serve until stopped; return the process exit status (non-zero on failure)."""
    try:
        call_hook(config, "on_starting", fatal=True)
    except HookError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(config)
    finally:
        call_hook(config, "on_exit")


def _run(config: Any) -> int:
    workers = config.workers or available_cpus()
    problem = static_problem(config.static, config.mount, config.app)
    if problem is not None:
        print(f"betula: error: {problem}", file=sys.stderr)
        return 1
    if config.metrics_port and importlib.util.find_spec("prometheus_client") is None:
        print("betula: error: --metrics-port needs prometheus_client: pip install "
              "'betula[metrics]'", file=sys.stderr)
        return 1
    configure_shared(config.state_max_bytes, config.pubsub_queue, config.redis_url)
    if config.redis_url:
        from .shared.redis_backend import check_redis  # (redis-py only when asked for)
        problem = check_redis(config.redis_url)
        if problem is not None:
            print(f"betula: error: {problem}", file=sys.stderr)
            return 1
    if config.worker_mode == "thread":
        problem = gil_problem()
        if problem is not None and not config.allow_gil:
            print(f"betula: error: {problem}", file=sys.stderr)
            return 1
        # One process of `workers` threads, under a master: it replaces the process when
        # it dies or stops answering, and rolls it on HUP (threadhost.py).
        return _run_master(config, 1, threads=workers)
    if config.worker_mode == "subinterpreter":
        problem = subinterpreter_problem()
        if problem is None and config.factory:
            problem = "--worker-mode subinterpreter does not take --factory apps"
        if problem is not None:
            print(f"betula: error: {problem}", file=sys.stderr)
            return 1
        # One process doing the I/O, its app in `workers` sub-interpreters (subinterp.py).
        return _run_master(config, 1, interpreters=workers)
    if workers > 1 or config.reload:  # --reload needs a master to roll the workers
        return _run_master(config, workers)
    try:
        endpoints = build_endpoints(config)
        hooks = RequestHooks.load(config)
        ssl_context = create_ssl_context(config)
        sockets = create_sockets(config)
    except (SetupError, ListenerError, RequestHookError) as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1
    try:
        return _hooked(hooks, endpoints,
                       Server(config, endpoints, sockets, ssl_context=ssl_context)).run()
    finally:
        for sock in sockets:
            sock.close()


def _hooked(hooks: RequestHooks | None, endpoints: list[Endpoint], server: Server) -> Server:
    """The request hooks around the server's apps, after every other replacement of them
    (runners, sub-interpreters); a WSGI app's async hooks run on the server's loop."""
    if hooks is not None:
        hooks.wrap(endpoints, lambda: server.worker_state.loop
                   if server.worker_state is not None else None)
    return server


def _in_interpreters(config: Any, endpoints: list[Endpoint], count: int) -> None:
    """--worker-mode subinterpreter: each app runs in `count` sub-interpreters."""
    for endpoint in endpoints:
        try:
            if endpoint.interface == "wsgi":
                endpoint.app = InterpreterApp(endpoint.name, config.app_dir, count)
            else:
                endpoint.app = InterpreterASGIApp(endpoint.name, config.app_dir, count,
                                                  config.lifespan)
        except SubinterpreterError as exc:
            raise SetupError(str(exc)) from None
        endpoint.how += f", in {count} sub-interpreters"


def _run_master(config: Any, workers: int, threads: int = 0, interpreters: int = 0) -> int:
    """The master owns the sockets; each forked worker imports the app itself (so HUP
    re-imports changed code) and reports ready once serving."""
    try:
        ssl_context = create_ssl_context(config)
        sockets = create_sockets(config)
    except ListenerError as exc:
        print(f"betula: error: {exc}", file=sys.stderr)
        return 1

    master_pid = os.getpid()  # (taken before any fork: see Server.master_pid)

    def worker_main(notify: Any) -> int:
        call_hook(config, "on_worker_boot")
        try:
            endpoints = build_endpoints(config)
            hooks = RequestHooks.load(config)
            if interpreters:
                _in_interpreters(config, endpoints, interpreters)
        except (SetupError, RequestHookError) as exc:
            print(f"betula: error: {exc}", file=sys.stderr)
            return BOOT_FAILED
        guests = [endpoint.app for endpoint in endpoints
                  if isinstance(endpoint.app, (InterpreterApp, InterpreterASGIApp))]
        try:
            return _hooked(hooks, endpoints,
                           Server(config, endpoints, sockets, ssl_context=ssl_context,
                                  notify=notify, master_pid=master_pid)).run()
        finally:
            for guest in guests:
                guest.close()

    def thread_host_main(notify: Any) -> int:  # --worker-mode thread: `threads` servers
        call_hook(config, "on_worker_boot")
        with importing_without_gil() as imports:  # the app's import, watched for the GIL
            try:
                first: list[Any] = [build_endpoints(config)]
                hooks = RequestHooks.load(config)
            except (SetupError, RequestHookError) as exc:
                print(f"betula: error: {exc}", file=sys.stderr)
                return BOOT_FAILED
        problem = gil_problem(imports.modules)
        if problem is not None and not config.allow_gil:
            print(f"betula: error: {problem}", file=sys.stderr)
            return BOOT_FAILED

        def make_server(thread_notify: Any) -> Server:
            # Each thread its own endpoints (their lifespan state is per server); the
            # modules are imported once, above.
            endpoints = first.pop() if first else build_endpoints(config)
            # Each thread its own descriptors of the listening sockets: a server closes its
            # own when it stops, and the others must go on accepting on theirs.
            return _hooked(hooks, endpoints,
                           Server(config, endpoints, [sock.dup() for sock in sockets],
                                  ssl_context=ssl_context, notify=thread_notify,
                                  master_pid=master_pid, signals=False))

        return ThreadHost(config, threads, make_server, notify).run()

    # The shared state lives in the master: its server runs in a thread of the master, and
    # the workers inherit where it listens (BETULA_STATE_SOCKET).
    state_server = None if config.redis_url else StateServer(config.state_max_bytes)
    if state_server is not None:
        state_server.start()
    metrics = exporter = None
    made_dir = ""
    try:
        if config.metrics_port:
            # Workers leave their counts in a directory; the master sums them (metrics.py).
            if not config.metrics_dir:
                made_dir = tempfile.mkdtemp(prefix="betula-metrics-")
                config = config.replace(metrics_dir=made_dir)  # (the workers' closures too)
            metrics = MasterMetrics(config.metrics_dir)
            try:
                exporter = MetricsServer(config.host, config.metrics_port, metrics.render)
            except OSError as exc:
                print(f"betula: error: cannot listen for metrics on {config.host}:"
                      f"{config.metrics_port}: {exc.strerror}", file=sys.stderr)
                return 1
            exporter.start()
        main = thread_host_main if threads else worker_main
        return Supervisor(config, sockets, main, workers, metrics, exporter).run()
    finally:
        if exporter is not None:
            exporter.close()
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)
        if state_server is not None:
            state_server.stop()
        for sock in sockets:
            sock.close()
