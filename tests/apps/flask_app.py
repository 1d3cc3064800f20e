"""A Flask app served by the real CLI in tests/test_wsgi_frameworks.py.

``app`` is the main app; ``propagating`` is a second, tiny app with PROPAGATE_EXCEPTIONS on,
so an exception leaves Flask and reaches the server (which must answer 500 and log it).

The streaming endpoint is gated: after each chunk the generator waits (bounded) until the
test calls ``/release/<token>`` on another connection, so the test can prove that each
chunk reaches the client while the generator is still suspended.
"""

from __future__ import annotations

import hashlib
import os
import threading

from flask import (
    Flask,
    Response,
    abort,
    jsonify,
    redirect,
    request,
    send_file,
    session,
    stream_with_context,
    url_for,
)

app = Flask(__name__)
app.config["SECRET_KEY"] = "betula-tests-not-secret"
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

_gates: dict[str, threading.Semaphore] = {}
_gates_lock = threading.Lock()
GATE_TIMEOUT = 10.0


def _gate(token: str) -> threading.Semaphore:
    with _gates_lock:
        gate = _gates.get(token)
        if gate is None:
            gate = _gates[token] = threading.Semaphore(0)
        return gate


# -- routing ----------------------------------------------------------------------------------
@app.get("/")
def index():
    return "flask says hi"


@app.get("/users/<int:uid>/posts/<slug>")
def user_post(uid: int, slug: str):
    return jsonify(uid=uid, uid_type=type(uid).__name__, slug=slug)


@app.get("/price/<float:amount>")
def price(amount: float):
    return jsonify(amount=amount, doubled=amount * 2)


@app.get("/files/<path:subpath>")
def files(subpath: str):
    return jsonify(subpath=subpath, path_info=request.environ["PATH_INFO"])


@app.get("/items/<uuid:item_id>")
def item(item_id):
    return jsonify(item_id=str(item_id), version=item_id.version)


@app.route("/methods", methods=["GET", "PUT", "DELETE"])
def methods():
    return jsonify(method=request.method)


# -- JSON, forms, uploads ----------------------------------------------------------------------
@app.post("/json")
def json_echo():
    data = request.get_json()
    return jsonify(received=data, keys=sorted(data), count=len(data),
                   content_length=request.environ.get("CONTENT_LENGTH", ""),
                   transfer_encoding=request.headers.get("Transfer-Encoding", "")), 201


@app.post("/form")
def form():
    return jsonify(name=request.form["name"], tags=request.form.getlist("tag"),
                   note=request.form.get("note", ""))


@app.post("/upload")
def upload():
    out = {"fields": request.form.to_dict(), "files": {}}
    for field, storage in request.files.items(multi=True):
        data = storage.read()
        out["files"][field] = {
            "filename": storage.filename,
            "content_type": storage.mimetype,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return jsonify(out)


# -- streaming ---------------------------------------------------------------------------------
@app.get("/stream/<token>")
def stream(token: str):
    count = request.args.get("n", 4, type=int)
    gate = _gate(token)

    @stream_with_context
    def generate():
        # request is still usable inside the generator thanks to stream_with_context
        label = request.args.get("label", "chunk")
        for i in range(count):
            yield f"{label}-{i};".encode()
            if i < count - 1 and not gate.acquire(timeout=GATE_TIMEOUT):
                yield b"gate-timeout;"
                return
        yield b"done"

    return Response(generate(), mimetype="text/plain")


@app.get("/release/<token>")
def release(token: str):
    _gate(token).release()
    return "released"


@app.get("/plain-stream")
def plain_stream():
    size = request.args.get("size", 1000, type=int)
    count = request.args.get("n", 5, type=int)

    def generate():
        for i in range(count):
            yield bytes([65 + i % 26]) * size

    return Response(generate(), mimetype="application/octet-stream")


# -- files -----------------------------------------------------------------------------------
@app.get("/download")
def download():
    return send_file(os.environ["FLASK_TEST_FILE"], mimetype="application/octet-stream",
                     as_attachment=True, download_name="data.bin", conditional=True,
                     etag=True)


# -- errors ----------------------------------------------------------------------------------
@app.get("/missing/<int:n>")
def missing(n: int):
    if n > 0:
        abort(404, description=f"thing {n} is not here")
    return "zero is here"


@app.get("/teapot")
def teapot():
    abort(418)


@app.get("/boom")
def boom():
    raise RuntimeError("flask boom marker 7319")


@app.errorhandler(418)
def handle_teapot(exc):
    return jsonify(error="teapot", code=exc.code), 418


# -- environ, url_for, redirects ----------------------------------------------------------------
@app.get("/environ")
def environ():
    env = request.environ
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_HOST", "CONTENT_TYPE",
            "CONTENT_LENGTH", "wsgi.url_scheme"]
    return jsonify(
        environ={k: env.get(k) for k in keys},
        wsgi_version=list(env["wsgi.version"]),
        multithread=env["wsgi.multithread"],
        remote_port_is_digit=str(env.get("REMOTE_PORT", "")).isdigit(),
        url_for_post=url_for("user_post", uid=7, slug="hello"),
        url_for_post_external=url_for("user_post", uid=7, slug="hello", _external=True),
        url_for_static=url_for("files", subpath="a/b.txt"),
        script_root=request.script_root,
        path=request.path,
        full_path=request.full_path,
        url=request.url,
        base_url=request.base_url,
        url_root=request.url_root,
        args=request.args.to_dict(flat=False),
    )


@app.get("/go")
def go():
    return redirect(url_for("user_post", uid=1, slug="target"))


# -- cookies and sessions ------------------------------------------------------------------------
@app.get("/cookies/set")
def cookies_set():
    resp = jsonify(ok=True)
    resp.set_cookie("flavour", "oatmeal", path="/", httponly=True)
    resp.set_cookie("count", "3", max_age=3600, samesite="Lax")
    return resp


@app.get("/cookies/show")
def cookies_show():
    return jsonify(cookies=request.cookies.to_dict(), raw=request.headers.get("Cookie", ""))


@app.get("/session/incr")
def session_incr():
    session["n"] = session.get("n", 0) + 1
    return jsonify(n=session["n"])


# -- a second app whose exceptions escape Flask --------------------------------------------------
propagating = Flask("propagating")
propagating.config["PROPAGATE_EXCEPTIONS"] = True


@propagating.get("/ok")
def propagating_ok():
    return "fine"


@propagating.get("/boom")
def propagating_boom():
    raise ValueError("escaped flask marker 4471")
