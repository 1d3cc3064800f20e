"""The command line (issue 2): how an app is named and loaded, bad app specs, --version, logging.

Black-box: ``betula`` / ``python -m betula`` in a subprocess, real sockets.
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
import socket
import subprocess
import sysconfig
import uuid
from pathlib import Path

import httpx
import pytest

import betula as betula_pkg
from tests.support import need
from tests.support.server import ServerProcess, betula, one_error_line, run_cli
from tests.support.wire import read_response

APP = "tests.apps.cli_apps:app"


# -- helpers ------------------------------------------------------------------------------------
def write_module(directory: Path, source: str, prefix: str = "cliapp") -> str:
    """Write ``source`` as a uniquely named module in ``directory``; return the module name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    (directory / f"{name}.py").write_text(source)
    return name


def console_script() -> str:
    """The installed ``betula`` script (next to this Python's, else on PATH): a skip on a
    developer's machine without it, a failure in CI."""
    candidate = Path(sysconfig.get_path("scripts")) / "betula"
    if candidate.exists():
        return str(candidate)
    return need.program("betula", "pip install -e .")


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


# -- serving an app -----------------------------------------------------------------------------
def test_python_m_betula_serves_module_attr(serve):
    server = serve(APP)
    response = httpx.get(server.base_url + "/hello?a=1", timeout=10)
    assert response.status_code == 200
    scope = response.json()
    assert scope["type"] == "http" and scope["path"] == "/hello"
    assert scope["query_string"] == "a=1"


def test_console_script_serves_module_attr():
    script = console_script()
    server = ServerProcess([APP, "--port", "0"], command=[script])
    try:
        server.start()
        response = httpx.get(server.base_url + "/via-script", timeout=10)
        assert response.status_code == 200
        assert response.json()["path"] == "/via-script"
    finally:
        assert server.stop() == 0, server.log


def test_console_script_version():
    script = console_script()
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=20,
                          check=False)
    assert proc.returncode == 0
    assert betula_pkg.__version__ in proc.stdout


def test_module_without_attribute_defaults_to_app(serve):
    server = serve("tests.apps.cli_apps")
    response = httpx.get(server.base_url + "/x", timeout=10)
    assert response.status_code == 200 and response.json()["path"] == "/x"


def test_factory_flag_calls_the_factory(serve):
    server = serve("tests.apps.cli_apps:create_app", "--factory")
    response = httpx.get(server.base_url + "/", timeout=10)
    assert response.status_code == 200
    assert response.text == "made by factory"


def test_app_dir_makes_module_importable(serve, tmp_path):
    name = write_module(tmp_path, (
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from app dir'})\n"
    ), prefix="appdir")
    # Not importable without --app-dir (so the flag is what makes the difference) ...
    code, output = run_cli(f"{name}:app", "--port", "0", "--lifespan", "off")
    assert code != 0
    assert name in one_error_line(output)
    # ... and served with it.
    server = serve(f"{name}:app", "--app-dir", str(tmp_path), "--lifespan", "off")
    response = httpx.get(server.base_url + "/", timeout=10)
    assert response.status_code == 200 and response.text == "from app dir"


# -- bad app specs: one clear line, non-zero exit, no traceback wall ------------------------------
def test_module_missing():
    code, output = run_cli("tests.apps.no_such_module_xyz:app", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "tests.apps.no_such_module_xyz" in line
    assert "not found" in line.lower() or "no module" in line.lower()


def test_top_level_package_missing():
    code, output = run_cli("nopkg_betula_xyz.sub:app", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "nopkg_betula_xyz" in line


def test_attribute_missing():
    code, output = run_cli("tests.apps.cli_apps:no_such_attr", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "no_such_attr" in line
    assert "tests.apps.cli_apps" in line
    assert "not found" in line.lower() or "no attribute" in line.lower()


def test_attribute_not_callable():
    code, output = run_cli("tests.apps.cli_apps:not_callable", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "not_callable" in line
    assert "not callable" in line.lower()


def test_import_raising_value_error(tmp_path):
    name = write_module(tmp_path, "X = 1\nraise ValueError('import-time-marker')\n")
    code, output = run_cli(f"{name}:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert name in line
    assert "ValueError" in line and "import-time-marker" in line


def test_import_with_syntax_error(tmp_path):
    name = write_module(tmp_path, "async def app(scope, receive, send):\n    return (\n\n"
                                  "def broken(:\n    pass\n")
    code, output = run_cli(f"{name}:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert name in line
    assert "SyntaxError" in line


def test_missing_import_inside_module_names_that_import(tmp_path):
    name = write_module(tmp_path, "import betula_missing_dependency_xyz  # noqa\n\n"
                                  "async def app(scope, receive, send):\n    pass\n")
    code, output = run_cli(f"{name}:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "betula_missing_dependency_xyz" in line
    # the app module itself exists: the message must not claim it is missing
    assert f"module {name!r} not found" not in line
    assert f"No module named {name!r}" not in line


def test_factory_raising():
    code, output = run_cli("tests.apps.cli_apps:factory_raises", "--factory", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "factory_raises" in line
    assert "RuntimeError" in line and "factory-failure-marker" in line


def test_factory_returning_non_callable():
    code, output = run_cli("tests.apps.cli_apps:factory_returns_junk", "--factory",
                           "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "factory_returns_junk" in line and "not callable" in line.lower()


def test_factory_not_callable():
    code, output = run_cli("tests.apps.cli_apps:not_callable", "--factory", "--port", "0")
    assert code != 0
    line = one_error_line(output)
    assert "not_callable" in line and "not callable" in line.lower()


@pytest.mark.parametrize("args", [[], ["--port", "0"]], ids=["bare", "flags-only"])
def test_no_app_given(args):
    code, output = run_cli(*args)
    assert code != 0
    line = one_error_line(output)
    assert "application" in line.lower() or "app" in line.lower()
    assert "MODULE:ATTR" in line.upper()


# -- --version ----------------------------------------------------------------------------------
def test_version_flag():
    code, output = run_cli("--version")
    assert code == 0
    assert output.strip() == f"betula {betula_pkg.__version__}"


def test_version_matches_installed_metadata():
    try:
        installed = importlib.metadata.version("betula")
    except importlib.metadata.PackageNotFoundError:
        need.missing("betula's distribution metadata", "pip install -e .")
    assert installed == betula_pkg.__version__


# -- logging ------------------------------------------------------------------------------------
DURATION = r"\d+(?:\.\d+)?\s*(?:ms|s|us|µs)\b"


def test_access_log_line_per_request(serve):
    server = serve(APP)
    with server.connect() as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(b"GET /bytes/5?q=1&r=two HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, body = read_response(sock)
        assert status == 200 and body == b"xxxxx"
        sock.sendall(b"POST /bytes/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        status, _, _, body = read_response(sock)
        assert status == 200 and body == b"x" * 7
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, _ = read_response(sock)
        assert status == 500
    get_re = (rf"127\.0\.0\.1:{client_port}\b.*\"GET /bytes/5\?q=1&r=two HTTP/1\.1\" 200 5 "
              + DURATION)
    post_re = rf"127\.0\.0\.1:{client_port}\b.*\"POST /bytes/7 HTTP/1\.1\" 200 7 " + DURATION
    boom_re = rf"127\.0\.0\.1:{client_port}\b.*\"GET /boom HTTP/1\.1\" 500 \d+ " + DURATION
    for pattern in (get_re, post_re, boom_re):
        assert server.wait_for_log(pattern, 10) is not None, f"{pattern}\n{server.log}"
    assert server.stop() == 0
    assert server.wait_for_log(r"\bStopped\b", 5), server.log  # every line has been read
    log = server.log
    # exactly one line per request
    assert len(re.findall(r"\"GET /bytes/5\?", log)) == 1, log
    assert len(re.findall(r"\"POST /bytes/7 ", log)) == 1, log
    assert len(re.findall(r"\"GET /boom ", log)) == 1, log


def test_access_log_one_line_each_for_repeated_requests(serve):
    server = serve(APP)
    with server.connect() as sock:
        for n in (1, 2, 3):
            sock.sendall(f"GET /bytes/{n}?k={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, _, body = read_response(sock)
            assert status == 200 and body == b"x" * n
    assert server.wait_for_log(r"\"GET /bytes/3\?k=3 ", 10) is not None, server.log
    assert server.stop() == 0
    assert server.wait_for_log(r"\bStopped\b", 5), server.log  # every line has been read
    for n in (1, 2, 3):
        assert len(re.findall(rf"\"GET /bytes/{n}\?k={n} HTTP/1\.1\" 200 {n} ", server.log)) == 1


def test_no_access_log_flag(serve):
    server = serve(APP, "--no-access-log")
    response = httpx.get(server.base_url + "/bytes/4?hidden=1", timeout=10)
    assert response.status_code == 200 and response.text == "xxxx"
    assert server.stop() == 0
    assert server.wait_for_log(r"\bStopped\b", 5), server.log  # the log did flush to the end
    log = server.log
    assert "/bytes/4" not in log, log
    assert "Listening on" in log  # only the access log is off


def test_log_level_warning_hides_info_but_keeps_errors():
    listener = listening_socket()
    port = listener.getsockname()[1]
    server = betula(APP, "--fd", str(listener.fileno()), "--log-level", "warning")
    try:
        server.start(wait=False, pass_fds=(listener.fileno(),))
        # The kernel queues the connection on the shared listener until the server accepts it.
        response = httpx.get(f"http://127.0.0.1:{port}/bytes/3?q=info", timeout=20)
        assert response.status_code == 200 and response.text == "xxx"
        response = httpx.get(f"http://127.0.0.1:{port}/boom", timeout=20)
        assert response.status_code == 500
        assert server.wait_for_log("boom-marker", 10) is not None, server.log
    finally:
        code = server.stop()
        listener.close()
    assert code == 0
    log = server.log
    assert "Listening on" not in log and "serving" not in log, log
    assert "/bytes/3" not in log, log  # access lines are info
    assert not re.search(r"\bINFO\b", log), log
    assert "Exception in ASGI application" in log or "boom-marker" in log
    assert "Traceback (most recent call last)" in log


def test_app_exception_logged_with_traceback(serve):
    server = serve(APP)
    response = httpx.get(server.base_url + "/boom", timeout=10)
    assert response.status_code == 500
    assert server.wait_for_log(r"RuntimeError: boom-marker", 10) is not None, server.log
    log = server.log
    assert "Traceback (most recent call last)" in log
    assert "cli_apps.py" in log  # the traceback reaches into the app's code
    assert re.search(r"\bERROR\b", log), log
    # the server keeps serving after an app error
    assert httpx.get(server.base_url + "/ok", timeout=10).status_code == 200
    assert server.stop(signal.SIGINT) == 0


# -- --print-config -----------------------------------------------------------------------------
def test_print_config_says_each_setting_and_where_it_came_from(tmp_path):
    config_file = tmp_path / "betula.toml"
    config_file.write_text('threads = 7\nroot_path = "/from-file"\n')
    code, out = run_cli("--print-config", "--config", str(config_file), "--port", "9123",
                        "--no-http2", APP, env={"BETULA_WORKERS": "3", "BETULA_THREADS": "5"})
    assert code == 0, out
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert re.fullmatch(r'app = "tests\.apps\.cli_apps:app"\s+# argument', lines["app"])
    assert re.fullmatch(r"port = 9123\s+# flag --port", lines["port"])
    assert re.fullmatch(r"http2 = false\s+# flag --http2", lines["http2"])
    assert re.fullmatch(r"workers = 3\s+# env BETULA_WORKERS", lines["workers"])
    # the environment wins over the file, the file over the default
    assert re.fullmatch(r"threads = 5\s+# env BETULA_THREADS", lines["threads"])
    assert re.fullmatch(rf'root_path = "/from-file"\s+# file {re.escape(str(config_file))}',
                        lines["root_path"])
    assert re.fullmatch(r"backlog = \d+\s+# default", lines["backlog"])
    assert re.search(r"^# runner = \(unset\)\s+# default$", out, re.M)


def test_print_config_output_is_a_config_file_that_gives_the_same_settings(tmp_path):
    from betula.config import Config

    args = ["--workers", "2", "--mount", "/api=tests.apps.cli_apps:app", "--uds-perms", "600",
            "--forwarded-allow-ips", "10.0.0.0/8", "--no-access-log", "--timeout-worker",
            "12.5", APP]
    code, out = run_cli("--print-config", *args)
    assert code == 0, out
    printed = tmp_path / "printed.toml"
    printed.write_text(out)
    direct = Config.load(vars(__import__("betula.cli").cli.build_parser().parse_args(args)),
                         environ={})
    from_file = Config.load({"config": str(printed)}, environ={})
    expected = direct.as_dict()
    got = from_file.as_dict()
    expected.pop("config")
    got.pop("config")
    assert got == expected


def test_print_config_reports_a_bad_setting_like_a_start_would():
    code, out = run_cli("--print-config", "--workers", "zero", APP)
    assert code == 2
    assert one_error_line(out).startswith("betula: error: invalid value for workers")
