"""A page for headless Chromium over HTTP/2 (tests/test_h2_websocket.py): ``/?tag=T`` is a
page that reports, through ``/result``, the protocol its own load used
(``nextHopProtocol``) and a WebSocket round trip to ``/ws``; the server prints
``H2B <what> <tag> <json>`` lines (the page's result, the WebSocket's scope)."""

from __future__ import annotations

import json
import sys
from urllib.parse import parse_qs

from tests.apps.lifespan_stub import serve_lifespan

PAGE = b"""<!doctype html><html><body><script>
const tag = new URLSearchParams(location.search).get("tag");
const report = (result) => fetch("/result?tag=" + tag, {method: "POST",
    body: JSON.stringify(result)});
const nhp = performance.getEntriesByType("navigation")[0].nextHopProtocol;
const ws = new WebSocket("wss://" + location.host + "/ws?tag=" + tag);
ws.onopen = () => ws.send("hello over h2 from chromium");
ws.onmessage = (event) => {
  ws.close(1000, "done");
  report({nextHopProtocol: nhp, echo: event.data, extensions: ws.extensions});
};
ws.onerror = () => report({nextHopProtocol: nhp, error: "websocket failed"});
</script></body></html>"""


def say(what: str, tag: str, payload: object) -> None:
    sys.stdout.write(f"H2B {what} {tag} {json.dumps(payload, sort_keys=True)}\n")
    sys.stdout.flush()


def _tag(scope) -> str:
    return parse_qs(scope["query_string"].decode()).get("tag", ["-"])[0]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()
        say("ws", _tag(scope), {"http_version": scope["http_version"],
                                "scheme": scope["scheme"]})
        await send({"type": "websocket.accept"})
        for _ in range(100):
            message = await receive()
            if message["type"] == "websocket.disconnect":
                say("ws-closed", _tag(scope), {"code": message["code"]})
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/result":
        result = json.loads(body)
        result["http_version"] = scope["http_version"]
        say("result", _tag(scope), result)
        page, kind = b"ok", b"text/plain"
    elif scope["path"] == "/":
        page, kind = PAGE, b"text/html; charset=utf-8"
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": page})
