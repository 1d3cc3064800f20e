"""The bundled example: a tiny ASGI app with a few routes.

    betula examples.hello:app

/ says hello, /echo echoes a POST body, /scope shows the request's scope, /ws is a
WebSocket echo and /ws.html a page that talks to it from the browser.
"""

import json


def _jsonable(value):
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    # Route on the path below the mount point (scope["path"] includes root_path).
    path = scope["path"][len(scope["root_path"]):] or "/"
    if scope["type"] == "websocket":
        await _websocket_echo(path, receive, send)
        return
    if path == "/":
        body = b"Hello, world!"
        ctype = b"text/plain"
    elif path == "/echo":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        ctype = b"application/octet-stream"
    elif path == "/ws.html":
        body = PAGE
        ctype = b"text/html; charset=utf-8"
    elif path == "/scope":
        shown = {k: v for k, v in scope.items() if k not in ("headers", "state", "extensions")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")]
                            for n, v in scope["headers"]]
        body = json.dumps(shown, default=_jsonable).encode()
        ctype = b"application/json"
    else:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Not Found"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


async def _websocket_echo(path, receive, send):
    await receive()  # websocket.connect
    if path != "/ws":
        await send({"type": "websocket.close"})  # refused: the client gets a 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>Betula WebSocket echo</title>
<input id="text" value="hello"> <button id="send">send</button>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const ws = new WebSocket(location.href.replace(/^http/, "ws").replace(/ws\\.html.*$/, "ws"));
ws.onopen = () => log("open (extensions: " + (ws.extensions || "none") + ")");
ws.onmessage = (event) => log(event.data);
ws.onclose = (event) => log("closed " + event.code);
document.getElementById("send").onclick = () => ws.send(document.getElementById("text").value);
</script>
"""
