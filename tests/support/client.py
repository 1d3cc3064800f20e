"""Requests through a real HTTP client (httpx), for tests that need no raw bytes."""

from __future__ import annotations

import httpx


def get_json(srv, target: str, **kwargs) -> dict:
    """GET ``target`` (httpx keyword arguments as given); the answer is 200 and JSON."""
    kwargs.setdefault("timeout", 10)
    response = httpx.get(srv.base_url + target, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()
