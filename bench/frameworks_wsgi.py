"""The benchmark's framework routes for WSGI servers (bench/app_wsgi.py dispatches to them):

  /flask?page=N&q=S   -> Flask JSON view: {"page": N, "q": S, "items": [...]}
  /django?page=N&q=S  -> Django view, JsonResponse of the same
  /stream             -> a plain WSGI generator of 200 ``data:`` events

Identical for every server under test.
"""

from __future__ import annotations

import django
from django.conf import settings

EVENTS = 200
EVENT = b"data: {\"token\": \"lorem\"}\n\n"
ITEMS = [{"id": i, "name": f"item {i}", "price": 9.5 + i} for i in range(5)]

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="bench",
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"], USE_TZ=True,
        INSTALLED_APPS=[],
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402


def django_items(request):  # type: ignore[no-untyped-def]
    return JsonResponse({"page": int(request.GET.get("page", 0)),
                         "q": request.GET.get("q", ""), "items": ITEMS})


urlpatterns = [path("django", django_items)]
django_app = WSGIHandler()

flask_app = Flask(__name__)


@flask_app.get("/flask")
def flask_items():  # type: ignore[no-untyped-def]
    return jsonify(page=request.args.get("page", 0, type=int), q=request.args.get("q", ""),
                   items=ITEMS)


_STREAM_HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]


def stream(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", _STREAM_HEADERS)
    for _ in range(EVENTS):
        yield EVENT


ROUTES = {"/flask": flask_app, "/django": django_app, "/stream": stream}
