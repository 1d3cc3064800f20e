from __future__ import annotations

import json

from django.http import HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from .forms import NoteForm
from .models import Note


def _as_dict(note: Note) -> dict:
    return {"id": note.id, "title": note.title, "body": note.body}


@csrf_exempt
def api(request):
    """GET lists the notes (optionally ?q= filter on the title); POST (JSON) creates one."""
    if request.method == "POST":
        try:
            data = json.loads(request.body)
            note = Note.objects.create(title=data["title"], body=data.get("body", ""))
        except (ValueError, KeyError):
            return HttpResponseBadRequest("bad note")
        return JsonResponse(_as_dict(note), status=201)
    notes = Note.objects.all()
    query = request.GET.get("q")
    if query:
        notes = notes.filter(title__contains=query)
    return JsonResponse({"notes": [_as_dict(n) for n in notes], "count": notes.count()})


def new_note(request):
    """A CSRF-protected HTML form: GET renders it, a valid POST creates a note and redirects."""
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            form.save()
            return redirect("notes:list")
    else:
        form = NoteForm()
    return render(request, "notes/new.html", {"form": form})


def note_list(request):
    return render(request, "notes/list.html", {"notes": Note.objects.all()})


def meta(request):
    keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "SERVER_PROTOCOL",
            "CONTENT_TYPE", "HTTP_X_MULTI"]
    return JsonResponse({
        "meta": {k: request.META.get(k) for k in keys},
        "path": request.path,
        "path_info": request.path_info,
        "absolute": request.build_absolute_uri(),
        "get": {k: request.GET.getlist(k) for k in request.GET},
    })


def stream(request):
    count = int(request.GET.get("n", "5"))
    return StreamingHttpResponse((f"line {i}\n".encode() for i in range(count)),
                                 content_type="text/plain")


def boom(request):
    raise RuntimeError("django boom marker 5521")
