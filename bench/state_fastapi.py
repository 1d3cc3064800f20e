"""A FastAPI app for bench/state_ops.py: a JSON endpoint with and without one shared-state
``incr`` per request (what a view counter costs in a real framework)."""

from __future__ import annotations

from fastapi import FastAPI

from betula import state

app = FastAPI()


@app.get("/hello")
async def hello(page: int = 0) -> dict:
    return {"page": page}


@app.get("/hello-incr")
async def hello_incr(page: int = 0) -> dict:
    return {"page": page, "views": await state.aincr("bench:views")}
