"""An app whose module counts how many times it is executed (imported): run_asgi("...:app")
must import it once and reuse the cached app. Used only by tests/test_embed.py."""

from tests.apps import embed_apps

embed_apps.COUNTED_IMPORTS += 1
IMPORT_NUMBER = embed_apps.COUNTED_IMPORTS


async def app(scope, receive, send):
    message = await receive()
    assert message["type"] == "http.request"
    body = f"import #{IMPORT_NUMBER}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
