"""ASGI lifespan protocol (https://asgi.readthedocs.io/en/latest/specs/lifespan.html) and
``--lifespan auto|on|off`` with its timeouts, through the real CLI.
Apps: tests/apps/lifespan_apps.py.
"""

from __future__ import annotations

import signal

import httpx
import pytest

APPS = "tests.apps.lifespan_apps:"


def test_auto_tolerates_an_app_without_lifespan_quietly(serve):
    srv = serve(APPS + "raising", "--lifespan", "auto")
    response = httpx.get(srv.base_url + "/", timeout=10)
    assert response.status_code == 200 and response.text == "hello"
    assert srv.stop() == 0
    log = srv.log
    assert "Traceback" not in log
    assert "lifespan-marker-7d1" not in log  # the app's exception is not reported
    assert " ERROR " not in log and " WARNING " not in log and " CRITICAL " not in log


def test_on_with_an_app_that_raises_exits_non_zero(serve):
    srv = serve(APPS + "raising", "--lifespan", "on", wait=False)
    code = srv.wait_exit(15)
    assert code != 0
    assert "lifespan-marker-7d1" in srv.log  # the app's message, so the user knows why
    assert "Listening on" not in srv.log and "serving" not in srv.log


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_exits_non_zero_with_the_message(serve, mode):
    srv = serve(APPS + "failing", "--lifespan", mode, wait=False)
    code = srv.wait_exit(15)
    assert code != 0
    assert "database unreachable: failed-marker-3e9" in srv.log
    assert "serving" not in srv.log


def test_startup_timeout_exits_non_zero(serve):
    srv = serve(APPS + "hanging", "--lifespan-startup-timeout", "1", wait=False)
    code = srv.wait_exit(15)
    assert code != 0
    log = srv.log
    assert "LIFESPAN startup received" in log  # the app did get the startup event
    assert "serving" not in log
    error_lines = [line for line in log.splitlines() if "startup" in line.lower()
                   and "LIFESPAN " not in line]
    assert any(word in line.lower() for line in error_lines
               for word in ("timeout", "timed out", "within")), log


def test_state_from_startup_reaches_every_request(serve):
    srv = serve(APPS + "stateful")
    assert srv.wait_for_log(r"LIFESPAN startup complete", 10) is not None
    line = srv.wait_for_log(r"LIFESPAN scope ", 10)
    assert line is not None
    assert '"asgi_version": "3.0"' in line and '"state_type": "dict"' in line
    with httpx.Client(base_url=srv.base_url, timeout=10) as client:
        for _ in range(3):
            response = client.get("/")
            assert response.status_code == 200
            assert response.json()["state"] == {"db": "connected", "pool_size": 5}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_shutdown_runs_on_signal(serve, tmp_path, sig):
    marker = tmp_path / "shutdown.txt"
    srv = serve(APPS + "stateful", env={"BETULA_TEST_MARKER": str(marker)})
    assert httpx.get(srv.base_url + "/", timeout=10).status_code == 200
    assert not marker.exists()
    assert srv.stop(sig) == 0
    assert marker.read_text() == "shutdown ran\n"
    assert "LIFESPAN shutdown complete" in srv.log
    assert "Traceback" not in srv.log


def test_shutdown_timeout_still_exits(serve):
    srv = serve(APPS + "slow_shutdown", "--lifespan-shutdown-timeout", "1")
    assert httpx.get(srv.base_url + "/", timeout=10).status_code == 200
    srv.send_signal(signal.SIGINT)
    srv.wait_exit(15)  # raises if the server hangs on the unanswered shutdown
    log = srv.log
    assert "LIFESPAN shutdown received" in log
    assert any("shutdown" in line.lower() and ("within" in line or "timeout" in line.lower()
                                               or "timed out" in line.lower())
               for line in log.splitlines() if "LIFESPAN " not in line), log


def test_off_never_calls_the_app_with_lifespan(serve):
    srv = serve(APPS + "recording", "--lifespan", "off")
    assert httpx.get(srv.base_url + "/", timeout=10).status_code == 200
    assert srv.stop() == 0
    assert "called with lifespan scope" not in srv.log


def test_auto_calls_an_app_that_supports_lifespan(serve):
    # the control for the test above: the same app is called when lifespan is not off
    srv = serve(APPS + "recording")
    assert srv.wait_for_log(r"LIFESPAN called with lifespan scope", 10) is not None
    assert httpx.get(srv.base_url + "/", timeout=10).status_code == 200
    assert srv.stop() == 0
