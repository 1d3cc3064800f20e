"""examples/chat.py, the shared-state chat, on two workers with real WebSocket clients:
every line reaches every client of the room, the head count is exact, a newcomer gets
the history, rooms do not mix."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)


def _next(client, want):  # type: ignore[no-untyped-def]
    """The next message matching ``want`` (join/leave events of others come in between)."""
    for _ in range(50):
        message = json.loads(client.recv(timeout=10))
        if all(message.get(k) == v for k, v in want.items()):
            return message
    raise AssertionError(f"no message like {want}")


def test_chat_rooms_span_both_workers(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve("examples.chat:app", "--workers", "2")
    url = f"ws://{srv.host}:{srv.port}/ws"
    assert b"Betula chat" in httpx.get(f"http://{srv.host}:{srv.port}/").content
    names = ["ada", "bob", "cy", "dee"]
    clients = []
    try:
        for i, name in enumerate(names):  # one at a time: each sees its join with the count
            client = connect(f"{url}?room=r1&name={name}", legacy=True)
            clients.append(client)
            assert _next(client, {"name": name, "event": "joined"})["count"] == i + 1
        other = connect(f"{url}?room=r2&name=eve", legacy=True)
        clients[1].send("hello from bob")
        for client in clients:
            assert _next(client, {"name": "bob", "text": "hello from bob"})
        other.send("only r2")
        assert _next(other, {"name": "eve", "text": "only r2"})
        late = connect(f"{url}?room=r1&name=fay", legacy=True)
        assert json.loads(late.recv(timeout=10)) == {"name": "bob", "text": "hello from bob"}
        assert _next(late, {"name": "fay", "event": "joined"})["count"] == 5
        late.close()
        assert _next(clients[0], {"name": "fay", "event": "left"})["count"] == 4
        other.close()
    finally:
        for client in clients:
            client.close()
    assert "Traceback" not in srv.log
