"""A real FastAPI application with WebSocket endpoints (tests/test_websocket_frameworks.py).

Path and query parameters, a dependency that can refuse the connection, a chat room that
broadcasts between clients, lifespan state. What only the app sees it prints as one
``WSFW ...`` line (flushed) for the test to read from the server's output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import (
    Depends,
    FastAPI,
    Header,
    Query,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)


def report(*parts: object) -> None:
    print("WSFW", *parts, flush=True)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from fastapi lifespan", "rooms_opened": {"count": 0}}


app = FastAPI(lifespan=lifespan)


# -- a dependency: the token from the query or a header, else the connection is refused ---------
class User:
    def __init__(self, name: str) -> None:
        self.name = name


async def current_user(
    token: Annotated[str | None, Query()] = None,
    x_token: Annotated[str | None, Header()] = None,
) -> User:
    given = token or x_token
    if not given or not given.startswith("user-"):
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    return User(given.removeprefix("user-"))


@app.websocket("/items/{item_id}")
async def items(
    websocket: WebSocket,
    item_id: int,
    user: Annotated[User, Depends(current_user)],
    q: str | None = None,
    limit: int = 3,
) -> None:
    await websocket.accept()
    await websocket.send_json({"item_id": item_id, "q": q, "limit": limit, "user": user.name})
    for n in range(limit):
        text = await websocket.receive_text()
        await websocket.send_text(f"{item_id}/{n}:{text}")
    await websocket.close(code=1000, reason="limit reached")


# -- a chat room: every message goes to everyone in the room -------------------------------------
class Room:
    def __init__(self) -> None:
        self.members: dict[str, WebSocket] = {}

    async def broadcast(self, message: dict[str, Any]) -> None:
        members = list(self.members.values())
        results = await asyncio.gather(*(ws.send_json(message) for ws in members),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                report("broadcast-error", repr(result))


ROOMS: dict[str, Room] = {}


@app.websocket("/chat/{room}")
async def chat(websocket: WebSocket, room: str, name: Annotated[str, Query(min_length=1)]
               ) -> None:
    await websocket.accept()
    if room not in ROOMS:
        ROOMS[room] = Room()
        websocket.state.rooms_opened["count"] += 1
    members = ROOMS[room]
    members.members[name] = websocket
    await members.broadcast({"event": "joined", "name": name,
                             "members": sorted(members.members)})
    try:
        while True:
            data = await websocket.receive_json()
            await members.broadcast({"event": "message", "from": name, "text": data["text"]})
    except WebSocketDisconnect as exc:
        del members.members[name]
        report("chat-left", room, name, exc.code)
        await members.broadcast({"event": "left", "name": name, "code": exc.code})
        if not members.members:
            del ROOMS[room]


# -- lifespan state -----------------------------------------------------------------------------
@app.websocket("/state")
async def ws_state(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({
        "greeting": websocket.state.greeting,
        "scope_greeting": websocket.scope["state"]["greeting"],
        "rooms_opened": websocket.state.rooms_opened["count"],
    })
    await websocket.close()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"ok": "yes"}
