"""--reload: a changed source file rolls the workers; a change that does not import is
logged and the old code keeps serving until the next change fixes it."""

import time

import httpx

APP = '''async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%s"})
'''


def wait_for_body(server, expected, timeout=15.0):
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:  # bounded poll
        try:
            body = httpx.get(server.base_url + "/", timeout=5).text
        except httpx.HTTPError:
            body = None
        if body == expected:
            return body
        time.sleep(0.1)
    return body


def test_reload_rolls_workers_and_survives_a_syntax_error(serve, tmp_path):
    source = tmp_path / "reload_app.py"
    source.write_text(APP % "v1")
    server = serve("reload_app:app", "--app-dir", str(tmp_path), "--reload", "--reload-dir",
                   str(tmp_path), "--workers", "2", "--lifespan", "off")
    assert wait_for_body(server, "v1") == "v1"
    source.write_text(APP % "v2")
    assert wait_for_body(server, "v2") == "v2"
    assert server.wait_for_log(r"Changed: .*reload_app\.py: reloading", 5)

    source.write_text(APP % "v3" + "\ndef broken(:\n")
    assert server.wait_for_log(r"SyntaxError", 15), server.log
    assert server.wait_for_log(r"rolling restart abandoned", 15)
    assert wait_for_body(server, "v2") == "v2"  # the old workers keep serving
    assert server.proc.poll() is None

    source.write_text(APP % "v4")  # the fix
    assert wait_for_body(server, "v4") == "v4"
    assert server.stop() == 0


def test_reload_include_and_exclude(serve, tmp_path):
    source = tmp_path / "reload_app2.py"
    source.write_text(APP % "a")
    (tmp_path / "notes.txt").write_text("x")
    server = serve("reload_app2:app", "--app-dir", str(tmp_path), "--reload", "--reload-dir",
                   str(tmp_path), "--reload-include", "*.txt", "--reload-exclude",
                   "reload_app2.py", "--lifespan", "off")
    assert wait_for_body(server, "a") == "a"
    source.write_text(APP % "b")  # excluded: no reload
    (tmp_path / "notes.txt").write_text("y")  # included: reload, which picks up "b"
    assert wait_for_body(server, "b") == "b"
    line = server.wait_for_log(r"Changed: ", 5)
    assert line is not None and "notes.txt" in line and "reload_app2.py" not in line
