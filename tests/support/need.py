"""What the suite needs from the machine. Everything in the test extras is imported plainly
(a missing one is a collection error, never a skip); what the machine must provide is
``required``: skipped on a developer's machine that lacks it, a failure in CI."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, how: str) -> None:
    """The machine lacks ``what``: fail in CI (``CI=true``), skip elsewhere."""
    text = f"{what} is missing ({how})"
    if IN_CI:
        pytest.fail(text + ": CI requires it", pytrace=False)
    pytest.skip(text)


def program(name: str, how: str) -> str:
    """The path of a program the test runs (``how``: the command that installs it)."""
    path = shutil.which(name)
    if path is None:
        missing(name, how)
    return path


def built_program(name: str, env: str, cached: str, how: str, ready: str = "") -> str:
    """A program a ``tools/`` script builds or installs: the path in ``env``, else on the
    PATH, else the newest match of the glob ``cached`` in the scripts' cache
    (``BETULA_CACHE``, else ``~/.cache/betula``), when its ``ready`` marker (a path in the
    cache) says the install finished."""
    path = os.environ.get(env) or shutil.which(name)
    if path:
        return path
    cache = Path(os.environ.get("BETULA_CACHE") or Path.home() / ".cache" / "betula")
    found = sorted(cache.glob(cached))
    if found and (not ready or (cache / ready).exists()):
        return str(found[-1])
    missing(name, how)
    raise AssertionError  # (missing() fails or skips)


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def ipv6() -> None:
    if not ipv6_available():
        missing("an IPv6 loopback (::1)", "the machine's network setup")
