"""A chat over WebSocket whose rooms span every worker: Betula's shared state and pub/sub.

    betula examples.chat:app --workers 2
    # then open http://127.0.0.1:8000/ in two browser tabs

Each WebSocket (``/ws?room=R&name=N``) subscribes to the topic ``chat.R``; what a client
says is published there, so every client of the room gets it, whichever worker holds its
connection. ``state.aincr`` keeps each room's head count (exact: atomic in the master), and
the room's history (its last 20 lines) is a shared list a newcomer reads first (best
effort: two lines said at the same instant on two workers may keep only one in it). A
``Gap`` (this client's queue overflowed or the worker lost the master) is told to the
client, who can reload the history.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from betula import pubsub, state

HISTORY = 20
PAGE = b"""<!doctype html><meta charset="utf-8"><title>Betula chat</title>
<style>body{font:15px system-ui;margin:2em}#log{height:60vh;overflow:auto;border:1px solid
#ccc;padding:.5em}</style>
<h1>Betula chat</h1><p>Room <b id="room"></b>, <span id="count">?</span> here.</p>
<div id="log"></div><form id="f"><input id="m" size="60" autofocus> <button>Send</button></form>
<script>
const q = new URLSearchParams(location.search);
const room = q.get("room") || "lobby", name = q.get("name") || "guest" + (Date.now() % 1000);
document.getElementById("room").textContent = room;
const log = document.getElementById("log");
const line = (t) => { const p = document.createElement("div"); p.textContent = t;
  log.appendChild(p); log.scrollTop = log.scrollHeight; };
const ws = new WebSocket(`ws://${location.host}/ws?room=${room}&name=${name}`);
ws.onmessage = (e) => { const m = JSON.parse(e.data);
  if (m.count !== undefined) document.getElementById("count").textContent = m.count;
  if (m.text) line(`${m.name}: ${m.text}`);
  if (m.event) line(`* ${m.name} ${m.event}`);
  if (m.gap) line(`* (some messages were missed)`); };
document.getElementById("f").onsubmit = (e) => { e.preventDefault();
  const m = document.getElementById("m"); ws.send(m.value); m.value = ""; };
</script>"""


def _query(scope: dict) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def _say(room: str, message: dict) -> None:
    """Publish to the room and keep it in the room's history."""
    if "text" in message:
        history = await state.aget(f"chat:{room}:history", [])
        await state.aset(f"chat:{room}:history", (history + [message])[-HISTORY:])
    await pubsub.apublish(f"chat.{room}", message)


async def _chat(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    query = _query(scope)
    room, name = query.get("room", "lobby")[:40], query.get("name", "guest")[:40]
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    async with pubsub.subscribe(f"chat.{room}") as messages:
        for old in await state.aget(f"chat:{room}:history", []):
            await send({"type": "websocket.send", "text": json.dumps(old)})
        count = await state.aincr(f"chat:{room}:count")
        await _say(room, {"name": name, "event": "joined", "count": count})

        async def forward() -> None:
            async for item in messages:
                payload = {"gap": item.missed} if isinstance(item, pubsub.Gap) else item.data
                await send({"type": "websocket.send", "text": json.dumps(payload)})

        forwarding = asyncio.ensure_future(forward())
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = (message.get("text") or "").strip()[:500]
                if text:
                    await _say(room, {"name": name, "text": text})
        finally:
            forwarding.cancel()
            count = await state.adecr(f"chat:{room}:count")
            await _say(room, {"name": name, "event": "left", "count": count})


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await _chat(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": PAGE})
