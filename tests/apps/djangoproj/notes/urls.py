from django.urls import path

from . import views

app_name = "notes"

urlpatterns = [
    path("", views.note_list, name="list"),
    path("api/", views.api, name="api"),
    path("new/", views.new_note, name="new"),
    path("meta/", views.meta, name="meta"),
    path("stream/", views.stream, name="stream"),
    path("boom/", views.boom, name="boom"),
]
