from __future__ import annotations

from pathlib import Path

import django.contrib.admin
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

ADMIN_STATIC = Path(django.contrib.admin.__file__).resolve().parent / "static"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("notes/", include("tests.apps.djangoproj.notes.urls")),
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": str(ADMIN_STATIC)}),
]
