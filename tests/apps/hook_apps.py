"""Hooks that append a line per call to the file named by BETULA_TEST_HOOK_LOG."""

import os


def _record(*parts):
    with open(os.environ["BETULA_TEST_HOOK_LOG"], "a") as fh:
        fh.write(" ".join(str(p) for p in parts) + "\n")


def on_starting(config):
    _record("on_starting", os.getpid())


def when_ready(config):
    _record("when_ready", os.getpid())


def on_worker_boot(config):
    _record("on_worker_boot", os.getpid())


def on_worker_exit(config, pid):
    _record("on_worker_exit", pid)


def on_exit(config):
    _record("on_exit", os.getpid())


def failing(config):
    raise RuntimeError("hook says no")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
