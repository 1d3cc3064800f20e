"""A Starlette and a Flask app behind the request hooks (tests/test_request_hooks.py): each
says who the hook let in (X-User-Id) and streams on /stream."""

from __future__ import annotations

from flask import Flask, Response, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


async def _whoami(req: Request) -> JSONResponse:
    return JSONResponse({"user": req.headers.get("x-user-id"), "path": req.url.path})


async def _stream(req: Request) -> StreamingResponse:
    async def parts():
        for part in (b"one,", b"two,", b"three"):
            yield part

    return StreamingResponse(parts(), media_type="text/plain")


starlette_app = Starlette(routes=[Route("/", _whoami), Route("/stream", _stream)])

flask_app = Flask(__name__)


@flask_app.route("/")
def flask_whoami():
    return {"user": request.headers.get("X-User-Id"), "path": request.path}


@flask_app.route("/stream")
def flask_stream():
    return Response((part for part in (b"one,", b"two,", b"three")), mimetype="text/plain")
