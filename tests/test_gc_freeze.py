"""``--gc-freeze`` (on by default): once the app has started, what it made so far is out
of the garbage collector's reach, so full collections scan only what serving creates (the
p99 on heads that never repeat, issue 14)."""

from __future__ import annotations

import pytest

from tests.support.server import betula
from tests.support.wire import read_response, request

APP = "tests.apps.freeze_app:app"


@pytest.mark.parametrize("flags, frozen", [((), True), (("--no-gc-freeze",), False)],
                         ids=["default", "no-gc-freeze"])
def test_the_worker_freezes_what_startup_made(flags, frozen):
    server = betula(APP, "--port", "0", "--no-access-log", *flags).start()
    try:
        with server.connect() as sock:
            sock.sendall(request("/"))
            status, _, _, body = read_response(sock)
        assert status == 200
        count = int(body)
        # The app's modules, betula's, the settings: thousands of objects when frozen.
        assert (count > 1000) if frozen else (count == 0), count
    finally:
        assert server.stop() == 0
