"""Multi-app mounts (issue 3, "Multi-app mounts"), black box: ``--mount PREFIX=MODULE:ATTR``
(repeatable), the same in TOML (a list or a ``[mount]`` table) and in ``BETULA_MOUNT``.
Apps: tests/apps/mount_apps.py; each answers with JSON saying which app it is and what its
scope / environ says, so every test reads the routing decision off the response.

Rules checked: longest prefix wins; a prefix matches the path exactly or when followed by
"/"; no match (and no root mount) is a 404; ASGI gets ``root_path`` = prefix and the full
``path``/``raw_path`` (ASGI spec, "root_path"); WSGI gets ``SCRIPT_NAME`` = prefix and the
rest in ``PATH_INFO`` (PEP 3333 / CGI); every ASGI mount runs its own lifespan with its own
state; bad prefixes are refused at startup with one line and a non-zero exit.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support import wire
from tests.support.logs import assert_clean, new_id, wait_record
from tests.support.server import ServerProcess, one_error_line, run_cli

M = "tests.apps.mount_apps:"
API, SITE, V2, LEGACY = M + "api", M + "site", M + "v2", M + "legacy"
THREE = ["--mount", f"/api={API}", "--mount", f"/legacy={LEGACY}", "--mount", f"/={SITE}"]
VIOLATIONS = ("AssertionError", "garbage collected without being closed", "Traceback")


# -- helpers -------------------------------------------------------------------------------------
def fetch(srv: ServerProcess, target: str, method: str = "GET", body: bytes = b"",
          sock=None) -> tuple[int, dict[str, str], bytes]:
    """One request with the exact request-target given (no client-side normalisation)."""
    own = sock is None
    if own:
        sock = srv.connect()
    try:
        lines = [f"Host: 127.0.0.1:{srv.port}"]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        if own:
            lines.append("Connection: close")
        sock.sendall(wire.request(target, method, tuple(lines), body))
        status, headers, _, data = wire.read_response(sock)
        return status, headers, data
    finally:
        if own:
            sock.close()


def fetch_json(srv: ServerProcess, target: str, **kw) -> dict:
    status, headers, data = fetch(srv, target, **kw)
    assert status == 200, (target, status, data)
    assert headers.get("content-type") == "application/json", (target, headers, data)
    return json.loads(data)


def settle(srv: ServerProcess, wsgi_prefix: str) -> None:
    """Return once the WSGI mount (served by one thread: ``--threads 1``) is done with every
    earlier request. The validator's complaint about an iterable the server never closed
    comes from its ``__del__``, when the thread lets go of it, after the response: the one
    thread serves this request only after that, and records before answering."""
    rid = new_id()
    assert fetch_json(srv, f"{wsgi_prefix}/settle?id={rid}")["app"] == "legacy"
    wait_record(srv, rid)


def stop(srv: ServerProcess) -> int:
    """Stop the server; its exit code, once its last line ("Stopped") is in the log."""
    code = srv.stop()
    assert srv.wait_for_log(r"INFO Stopped$", 5) is not None, srv.log[-3000:]
    return code


def startup_error(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start the CLI expecting it to refuse: (exit code, what it printed)."""
    return run_cli(*args, "--port", "0", env=env)


def assert_one_line_refusal(code: int, log: str, *needles: str) -> None:
    assert code != 0, log
    assert "serving" not in log and "Listening on" not in log, log
    line = one_error_line(log)
    for needle in needles:
        assert needle in line, (needle, line)


@pytest.fixture(scope="module")
def three():
    """/api (ASGI), /legacy (WSGI), / (ASGI) side by side."""
    srv = ServerProcess([*THREE, "--port", "0", "--timeout-graceful-shutdown", "2",
                         "--threads", "1"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(three):
    start = len(three.lines)
    yield three
    settle(three, "/legacy")
    assert_clean(three, start, VIOLATIONS)


# -- routing -------------------------------------------------------------------------------------
def test_three_apps_side_by_side(server):
    assert fetch_json(server, "/api/users")["app"] == "api"
    assert fetch_json(server, "/legacy/a/b")["app"] == "legacy"
    assert fetch_json(server, "/home")["app"] == "site"
    assert fetch_json(server, "/")["app"] == "site"


@pytest.mark.parametrize("target,app", [
    ("/api", "api"),              # exactly the prefix
    ("/api/", "api"),             # prefix followed by "/"
    ("/api/x/y", "api"),
    ("/api?x=1", "api"),          # the query is not part of the path
    ("/apix", "site"),            # not a path-segment match: falls to the root mount
    ("/api-v1/x", "site"),
    ("/ap", "site"),
    ("/legacy", "legacy"),
    ("/legacy/", "legacy"),
    ("/legacyx", "site"),
    ("/API/x", "site"),           # paths are case-sensitive
    ("/x/api/y", "site"),         # a prefix matches at the start only
])
def test_prefix_matches_exactly_or_before_a_slash(server, target, app):
    assert fetch_json(server, target)["app"] == app


@pytest.mark.parametrize("order", ["short-first", "long-first"])
def test_longest_prefix_wins_and_no_match_is_404(serve, order):
    mounts = [("/api", API), ("/api/v2", V2)]
    if order == "long-first":
        mounts.reverse()
    args = [arg for prefix, spec in mounts for arg in ("--mount", f"{prefix}={spec}")]
    srv = serve(*args)
    for target, app in [("/api/v2/users", "v2"), ("/api/v2", "v2"), ("/api/v2/", "v2"),
                        ("/api/v2x", "api"), ("/api/v3", "api"), ("/api/users", "api"),
                        ("/api", "api")]:
        assert fetch_json(srv, target)["app"] == app, target
    scope = fetch_json(srv, "/api/v2/users?q=1")
    assert (scope["root_path"], scope["path"], scope["raw_path"], scope["query_string"]) == (
        "/api/v2", "/api/v2/users", "/api/v2/users", "q=1")
    # No root mount: anything outside the prefixes is a 404 (and the connection lives on).
    with srv.connect() as sock:
        for target in ["/", "/apix", "/other/api", "/ap", "/favicon.ico"]:
            status, _, body = fetch(srv, target, sock=sock)
            assert status == 404, (target, status, body)
        assert fetch_json(srv, "/api/v2", sock=sock)["app"] == "v2"
        status, _, _ = fetch(srv, "/apix", method="POST", body=b"x" * 100, sock=sock)
        assert status == 404
        assert fetch_json(srv, "/api", sock=sock)["app"] == "api"  # the 404's body was consumed
    assert stop(srv) == 0
    assert "Traceback" not in srv.log


def test_one_connection_alternates_between_mounts(server):
    """Keep-alive requests on one connection each reach their own app with their own paths
    (per-connection caches must not leak one mount's scope or environ into another's)."""
    expected = [
        ("/api/a", {"app": "api", "root_path": "/api", "path": "/api/a"}),
        ("/legacy/b", {"app": "legacy", "SCRIPT_NAME": "/legacy", "PATH_INFO": "/b"}),
        ("/c", {"app": "site", "root_path": "", "path": "/c"}),
        ("/api/d", {"app": "api", "root_path": "/api", "path": "/api/d"}),
        ("/e", {"app": "site", "root_path": "", "path": "/e"}),
        ("/legacy", {"app": "legacy", "SCRIPT_NAME": "/legacy", "PATH_INFO": ""}),
        ("/legacy/f", {"app": "legacy", "SCRIPT_NAME": "/legacy", "PATH_INFO": "/f"}),
    ]
    with server.connect() as sock:
        for _ in range(2):
            for target, want in expected:
                got = fetch_json(server, target, sock=sock)
                assert {k: got.get(k) for k in want} == want, target


def test_request_bodies_reach_the_mounted_apps(server):
    for target, app in [("/api/echo", "api"), ("/legacy/echo", "legacy"), ("/echo", "site")]:
        status, _, data = fetch(server, target, method="POST", body=b"payload-" + app.encode())
        assert status == 200
        got = json.loads(data)
        assert got["app"] == app and got["body"] == "payload-" + app


# -- what the apps see ---------------------------------------------------------------------------
def test_asgi_mount_sees_root_path_and_the_full_path(server):
    scope = fetch_json(server, "/api/users?page=2")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/users"
    assert scope["raw_path"] == "/api/users"
    assert scope["query_string"] == "page=2"
    scope = fetch_json(server, "/api")
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/api", "/api", "/api")
    # percent-decoding applies to path, not raw_path; the prefix stays in both
    scope = fetch_json(server, "/api/a%20b/%C3%A9")
    assert scope["path"] == "/api/a b/\u00e9"
    assert scope["raw_path"] == "/api/a%20b/%C3%A9"
    assert scope["root_path"] == "/api"


def test_wsgi_mount_sees_script_name_and_path_info(server):
    env = fetch_json(server, "/legacy/a/b?x=1")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == (
        "/legacy", "/a/b", "x=1")
    env = fetch_json(server, "/legacy")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/legacy", "")
    env = fetch_json(server, "/legacy?q")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/legacy", "", "q")
    env = fetch_json(server, "/legacy/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/legacy", "/")
    # PEP 3333: PATH_INFO is percent-decoded, carried as latin-1 ("é" is two latin-1 chars)
    env = fetch_json(server, "/legacy/a%20b/%C3%A9")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/legacy", "/a b/\u00c3\u00a9")
    # the prefix is removed once: a repeated segment stays in PATH_INFO
    env = fetch_json(server, "/legacy/legacy/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/legacy", "/legacy/x")


def test_root_path_setting_is_prepended_to_every_mount(serve):
    """--root-path (a proxy stripped it) comes before the mount prefix: ASGI root_path and
    path, WSGI SCRIPT_NAME; routing is on the path as received."""
    srv = serve("--root-path", "/proxy", *THREE)
    scope = fetch_json(srv, "/api/x")
    assert (scope["app"], scope["root_path"], scope["path"], scope["raw_path"]) == (
        "api", "/proxy/api", "/proxy/api/x", "/proxy/api/x")
    env = fetch_json(srv, "/legacy/y")
    assert (env["app"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("legacy", "/proxy/legacy", "/y")
    scope = fetch_json(srv, "/z")
    assert (scope["app"], scope["root_path"], scope["path"]) == ("site", "/proxy", "/proxy/z")


def test_absolute_form_target_is_routed_by_its_path(server):
    """RFC 9112 3.2.2: a server MUST accept the absolute form; its path is what routes."""
    base = f"http://127.0.0.1:{server.port}"
    scope = fetch_json(server, base + "/api/users?x=1")
    assert (scope["app"], scope["root_path"], scope["path"], scope["query_string"]) == (
        "api", "/api", "/api/users", "x=1")
    env = fetch_json(server, base + "/legacy/a")
    assert (env["app"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("legacy", "/legacy", "/a")


@pytest.mark.parametrize("prefix,target,path", [
    ("/caf\u00e9", "/caf%C3%A9/menu", "/caf\u00e9/menu"),  # a non-ASCII prefix, as clients send it
    ("/api", "/%61pi/x", "/api/x"),                          # an encoded unreserved character
], ids=["non-ascii-prefix", "encoded-ascii"])
def test_prefix_matches_the_decoded_path(serve, prefix, target, path):
    """A mount is matched against the path the apps see (ASGI ``path``, WSGI PATH_INFO are
    decoded): otherwise a non-ASCII prefix is unreachable (clients must percent-encode it)
    and the root app gets a ``path`` that lies under another app's prefix."""
    srv = serve("--mount", f"{prefix}={V2}", "--mount", f"/={SITE}")
    scope = fetch_json(srv, target)
    assert (scope["app"], scope["root_path"], scope["path"], scope["raw_path"]) == (
        "v2", prefix, path, target)


def test_root_asgi_mount_has_empty_root_path(server):
    scope = fetch_json(server, "/some/where")
    assert scope["app"] == "site"
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "", "/some/where", "/some/where")
    scope = fetch_json(server, "/apix")
    assert (scope["app"], scope["root_path"], scope["path"]) == ("site", "", "/apix")


def test_root_wsgi_mount_has_empty_script_name(serve):
    srv = serve("--mount", f"/={LEGACY}", "--mount", f"/api={API}", "--threads", "1")
    env = fetch_json(srv, "/x/y")
    assert (env["app"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("legacy", "", "/x/y")
    env = fetch_json(srv, "/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/")
    env = fetch_json(srv, "/apix")  # not under /api
    assert (env["app"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("legacy", "", "/apix")
    assert fetch_json(srv, "/api/x")["app"] == "api"
    settle(srv, "")
    assert stop(srv) == 0
    assert_clean(srv, 0, VIOLATIONS)


def test_positional_app_serves_the_root_beside_mounts(serve):
    srv = serve(SITE, "--mount", f"/legacy={LEGACY}")
    scope = fetch_json(srv, "/x")
    assert (scope["app"], scope["root_path"], scope["path"]) == ("site", "", "/x")
    env = fetch_json(srv, "/legacy/y")
    assert (env["app"], env["SCRIPT_NAME"], env["PATH_INFO"]) == ("legacy", "/legacy", "/y")
    assert stop(srv) == 0


# -- lifespan ------------------------------------------------------------------------------------
def test_each_asgi_mount_gets_its_own_lifespan_and_state(serve):
    srv = serve(*THREE, "--mount", f"/api/v2={V2}", "--lifespan", "on")
    log = srv.log
    for name in ("api", "site", "v2"):
        assert f"MOUNT-LIFESPAN startup {name}" in log, log
    # every startup completed before the server said it was serving
    serving_at = next(i for i, line in enumerate(srv.lines) if "serving" in line)
    for name in ("api", "site", "v2"):
        started_at = next(i for i, line in enumerate(srv.lines)
                          if f"MOUNT-LIFESPAN startup {name}" in line)
        assert started_at < serving_at
    # each app's requests see its own state and none of the others'
    for target, name in [("/api/x", "api"), ("/y", "site"), ("/api/v2/z", "v2"),
                         ("/api", "api")]:
        state = fetch_json(srv, target)["state"]
        assert state == {"who": name, "only_" + name: f"{name}-lifespan-value"}, (target, state)
    # the WSGI mount runs no lifespan at all
    assert "MOUNT-LIFESPAN startup legacy" not in srv.log
    assert stop(srv) == 0
    log = srv.log
    for name in ("api", "site", "v2"):
        assert log.count(f"MOUNT-LIFESPAN shutdown {name}") == 1, log
    assert "Traceback" not in log


def test_mounted_apps_state_is_copied_per_request(serve):
    """The state an ASGI app sees is its own lifespan state: a second request to the same app
    still sees exactly it (scope["state"] is a copy per request, per the lifespan spec)."""
    srv = serve("--mount", f"/a={API}", "--mount", f"/b={SITE}")
    for _ in range(3):
        assert fetch_json(srv, "/a/1")["state"]["who"] == "api"
        assert fetch_json(srv, "/b/1")["state"]["who"] == "site"


def test_one_mount_failing_startup_stops_the_server_and_shuts_down_the_others(serve):
    srv = serve("--mount", f"/api={API}", "--mount", "/bad=tests.apps.lifespan_apps:failing",
                "--mount", f"/={SITE}", wait=False)
    code = srv.wait_exit(20)
    log = srv.log
    assert code != 0, log
    assert "database unreachable: failed-marker-3e9" in log
    assert "serving" not in log
    assert "MOUNT-LIFESPAN startup api" in log
    assert "MOUNT-LIFESPAN shutdown api" in log  # the app that did start is shut down


def test_a_mount_without_lifespan_support_does_not_disturb_the_others(serve):
    srv = serve("--mount", f"/api={API}", "--mount", "/quiet=tests.apps.lifespan_apps:raising")
    assert fetch_json(srv, "/api/x")["state"]["who"] == "api"
    status, _, body = fetch(srv, "/quiet/x")
    assert (status, body) == (200, b"hello")
    assert stop(srv) == 0
    assert "MOUNT-LIFESPAN shutdown api" in srv.log


# -- configuration sources -----------------------------------------------------------------------
TOML_LIST = f'mount = ["/api={API}", "/legacy={LEGACY}", "/={SITE}"]\n'
TOML_TABLE = f'[mount]\n"/api" = "{API}"\n"/legacy" = "{LEGACY}"\n"/" = "{SITE}"\n'
TOML_NESTED = f'[betula.mount]\n"/api" = "{API}"\n"/legacy" = "{LEGACY}"\n"/" = "{SITE}"\n'


@pytest.mark.parametrize("source", ["toml-list", "toml-table", "toml-betula-table", "env"])
def test_mounts_from_config_file_and_environment(serve, tmp_path, source):
    env = None
    args: list[str] = []
    if source == "env":
        env = {"BETULA_MOUNT": f"/api={API},/legacy={LEGACY},/={SITE}"}
    else:
        path = tmp_path / "betula.toml"
        path.write_text({"toml-list": TOML_LIST, "toml-table": TOML_TABLE,
                         "toml-betula-table": TOML_NESTED}[source])
        args = ["--config", str(path)]
    srv = serve(*args, env=env)
    scope = fetch_json(srv, "/api/users")
    assert (scope["app"], scope["root_path"], scope["path"]) == ("api", "/api", "/api/users")
    assert scope["state"]["who"] == "api"
    env_ = fetch_json(srv, "/legacy/a/b")
    assert (env_["app"], env_["SCRIPT_NAME"], env_["PATH_INFO"]) == ("legacy", "/legacy", "/a/b")
    scope = fetch_json(srv, "/apix")
    assert (scope["app"], scope["root_path"], scope["state"]["who"]) == ("site", "", "site")
    assert stop(srv) == 0
    for name in ("api", "site"):
        assert f"MOUNT-LIFESPAN shutdown {name}" in srv.log


def test_command_line_mounts_replace_the_config_files(serve, tmp_path):
    path = tmp_path / "betula.toml"
    path.write_text(f'mount = ["/from-file={API}"]\n')
    srv = serve("--config", str(path), "--mount", f"/from-cli={SITE}")
    assert fetch_json(srv, "/from-cli/x")["app"] == "site"
    status, _, _ = fetch(srv, "/from-file/x")
    assert status == 404


# -- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mounts,needle", [
    ([f"api={API}"], "'api'"),                                  # no leading "/"
    ([f"/api/={API}"], "'/api/'"),                              # trailing "/"
    ([f"/api={API}", f"/api={SITE}"], "'/api'"),                # given twice
    ([f"/={API}", f"/={SITE}"], "'/'"),                         # the root given twice
    ([f"/api={API}", f"/legacy/={LEGACY}"], "'/legacy/'"),      # the bad one is named
], ids=["no-leading-slash", "trailing-slash", "duplicate", "duplicate-root", "second-bad"])
def test_invalid_prefix_is_refused_with_one_line(mounts, needle):
    args = [arg for item in mounts for arg in ("--mount", item)]
    code, log = startup_error(*args)
    assert_one_line_refusal(code, log, needle, "mount")


@pytest.mark.parametrize("source", ["toml-list", "toml-table", "env"])
def test_invalid_prefix_from_file_or_env_is_refused(tmp_path, source):
    env = None
    args: list[str] = []
    if source == "env":
        env = {"BETULA_MOUNT": f"/ok={API},bad={SITE}"}
    else:
        path = tmp_path / "betula.toml"
        path.write_text(f'mount = ["/ok={API}", "bad={SITE}"]\n' if source == "toml-list"
                        else f'[mount]\n"/ok" = "{API}"\n"bad" = "{SITE}"\n')
        args = ["--config", str(path)]
    code, log = startup_error(*args, env=env)
    assert_one_line_refusal(code, log, "'bad'")


def test_malformed_mount_item_is_refused():
    code, log = startup_error("--mount", "/api")  # no "=MODULE:ATTR"
    assert_one_line_refusal(code, log, "/api")
    code, log = startup_error("--mount", "/api=")
    assert_one_line_refusal(code, log, "/api")


def test_unimportable_mount_names_the_mount():
    code, log = startup_error("--mount", f"/api={API}",
                              "--mount", "/broken=tests.apps.no_such_module_4f1:app")
    assert_one_line_refusal(code, log, "/broken", "no_such_module_4f1")
    code, log = startup_error("--mount", "/gone=tests.apps.mount_apps:no_such_attr_9c2")
    assert_one_line_refusal(code, log, "/gone", "no_such_attr_9c2")


def test_positional_app_and_root_mount_are_refused():
    code, log = startup_error(SITE, "--mount", f"/={API}")
    assert_one_line_refusal(code, log, "'/'")


# -- startup line --------------------------------------------------------------------------------
def test_startup_line_names_every_mount_with_its_interface(three):
    line = three.wait_for_log(r"serving", 1)
    assert line is not None
    for prefix, spec, iface in [("/api", API, "ASGI"), ("/legacy", LEGACY, "WSGI"),
                                ("/", SITE, "ASGI")]:
        pattern = re.escape(spec) + r" at " + re.escape(prefix) + r" \(" + iface + r"\b"
        assert re.search(pattern, line), (pattern, line)


# -- a real framework under a prefix -------------------------------------------------------------
def test_starlette_routes_under_its_mount_prefix(serve):
    srv = serve("--mount", f"/api={M}starlette_api", "--mount", f"/={SITE}")
    base = f"http://127.0.0.1:{srv.port}"
    got = fetch_json(srv, "/api/users/42")
    assert got["route"] == "user" and got["user_id"] == 42
    assert got["root_path"] == "/api"
    assert got["url_for"] == base + "/api/users/7"        # url_for includes the prefix
    assert got["url_path_for"] == "/users/7"              # the app's own path has none
    assert got["url"] == base + "/api/users/42"
    assert got["who"] == "starlette"                      # its own lifespan state
    # the bare prefix: Starlette's slash redirect keeps the prefix in its Location
    status, headers, _ = fetch(srv, "/api")
    assert status == 307 and headers["location"] == base + "/api/"
    assert fetch_json(srv, "/api/") == {"route": "index", "items": base + "/api/items"}
    assert fetch_json(srv, "/api/items") == {"route": "items"}
    # Starlette's own 404 inside the mount; the root app outside it
    status, _, body = fetch(srv, "/api/nope")
    assert status == 404 and b"no app is mounted" not in body
    assert fetch_json(srv, "/users/42")["app"] == "site"
    assert stop(srv) == 0
    assert "MOUNT-LIFESPAN shutdown starlette" in srv.log
    assert "Traceback" not in srv.log
